"""fsspec helpers: opening a root, and writes that are all-or-nothing for readers.

A write goes to `<root>/_tmp/<uuid>-<name>` and is then moved to its final name. On a local
disk the move is a rename (atomic); on object stores (s3://) an object appears only when its
upload completes. A writer killed at any moment therefore leaves at most a stray file under
`_tmp/`, never a partial file at a name a reader follows.
"""

from __future__ import annotations

import json
import os
import posixpath
import uuid

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

TMP_DIR = "_tmp"


def open_root(root: str) -> tuple[fsspec.AbstractFileSystem, str, str]:
    """(filesystem, path inside it, normalised root URL) of a local path or fsspec URL."""
    if "://" not in root or root.startswith("file://"):
        local = os.path.abspath(root.removeprefix("file://"))
        return fsspec.filesystem("file"), local, local
    fs, path = fsspec.core.url_to_fs(root)
    path = path.rstrip("/") or "/"
    return fs, path, fs.unstrip_protocol(path)


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocols


def _tmp_path(root_path: str, final: str) -> str:
    return posixpath.join(root_path, TMP_DIR, f"{uuid.uuid4().hex}-{posixpath.basename(final)}")


def _commit(fs, tmp: str, final: str) -> None:
    fs.makedirs(posixpath.dirname(final), exist_ok=True)
    if is_local(fs):
        os.replace(tmp, final)  # atomic rename, also over an existing file
    else:
        fs.mv(tmp, final)


def atomic_write_bytes(fs, root_path: str, final: str, data: bytes) -> None:
    """Write `data` to `final` so readers see either nothing (or the old file) or all of it."""
    tmp = _tmp_path(root_path, final)
    fs.makedirs(posixpath.dirname(tmp), exist_ok=True)
    with fs.open(tmp, "wb") as f:
        f.write(data)
    _commit(fs, tmp, final)


def atomic_write_json(fs, root_path: str, final: str, value) -> None:
    atomic_write_bytes(fs, root_path, final, json.dumps(value, indent=1, sort_keys=True).encode())


def atomic_write_parquet(fs, root_path: str, final: str, table: pa.Table) -> None:
    """Write a Parquet file via a temporary name (same guarantee as `atomic_write_bytes`)."""
    tmp = _tmp_path(root_path, final)
    fs.makedirs(posixpath.dirname(tmp), exist_ok=True)
    with fs.open(tmp, "wb") as f:
        pq.write_table(table, f)
    _commit(fs, tmp, final)


def read_json(fs, path: str):
    """The parsed JSON at `path`, or None when there is no such file."""
    try:
        with fs.open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        return None


def remove(fs, path: str) -> None:
    """Remove a file or a directory tree; nothing if it does not exist."""
    if fs.exists(path):
        fs.rm(path, recursive=True)
