"""fsspec helpers: opening a root, and writes that are all-or-nothing for readers.

Two kinds of write, neither ever shows a reader a partial file at its final name:
- `atomic_write_*` (replace): on a local disk the file is written under `<root>/_tmp/` and
  renamed over `final` (atomic); on object stores (s3://) it is one upload, and an object
  appears only when its upload completes.
- `create_file` / `create_json` (create-if-absent, for commits that several writers may race
  on): exactly one writer creates `final`; the others are told it exists. Local disk: written
  under `_tmp/`, then hard-linked to `final` (link(2) fails if the name exists; atomic on POSIX
  filesystems and NFS). S3: one conditional upload (`If-None-Match: *`), refused by the server
  if the key exists (AWS S3 since 2024, MinIO, moto; a store that ignores the header degrades
  to last-writer-wins).

A writer killed at any moment therefore leaves at most a stray file under `_tmp/` (local) or an
unfinished upload (S3), never a partial file at a name a reader follows.

Object-store roots are opened without fsspec's listings cache: other processes commit shards
at any time, and a cached listing would hide them (s3fs also answers `exists`/`open` from it).
"""

from __future__ import annotations

import json
import os
import posixpath
import uuid
from collections.abc import Callable
from typing import BinaryIO

import fsspec

TMP_DIR = "_tmp"


def url_to_fs(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, path) of a local path or fsspec URL; remote ones without listings cache."""
    local = local_path(url)
    if local is not None:
        return fsspec.filesystem("file"), os.path.abspath(local)
    return fsspec.core.url_to_fs(url, use_listings_cache=False)


def open_root(root: str) -> tuple[fsspec.AbstractFileSystem, str, str]:
    """(filesystem, path inside it, normalised root URL) of a local path or fsspec URL."""
    fs, path = url_to_fs(root)
    if is_local(fs):
        return fs, path, path
    path = path.rstrip("/") or "/"
    return fs, path, fs.unstrip_protocol(path)


def local_path(url: str) -> str | None:
    """The local path a workspace or dataset URL names (a plain path or `file://...`), or
    None for a remote one (s3://, memory://, ...): the one place URLs are told apart."""
    if fsspec.utils.get_protocol(url) not in ("file", "local"):
        return None
    return url.removeprefix("file://")


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocols


def _tmp_path(root_path: str, final: str) -> str:
    return posixpath.join(root_path, TMP_DIR, f"{uuid.uuid4().hex}-{posixpath.basename(final)}")


def _write_tmp(fs, root_path: str, final: str, write: Callable[[BinaryIO], None]) -> str:
    """Write a local temporary file for `final` with `write(file)`; returns its path."""
    tmp = _tmp_path(root_path, final)
    fs.makedirs(posixpath.dirname(tmp), exist_ok=True)
    fs.makedirs(posixpath.dirname(final), exist_ok=True)
    with open(tmp, "wb") as f:
        write(f)
    return tmp


def atomic_write_bytes(fs, root_path: str, final: str, data: bytes) -> None:
    """Write (or replace) `final` so readers see either the old file or all of `data`."""
    if not is_local(fs):
        fs.pipe_file(final, data)  # one upload: the object appears complete
        return
    tmp = _write_tmp(fs, root_path, final, lambda f: f.write(data))
    os.replace(tmp, final)  # atomic rename, also over an existing file


def atomic_write_json(fs, root_path: str, final: str, value) -> None:
    atomic_write_bytes(fs, root_path, final, _json_bytes(value))


def create_file(fs, root_path: str, final: str, write: Callable[[BinaryIO], None]) -> bool:
    """Create `final` with `write(file)` unless a file is there already (see the module
    docstring). True if this call created it; False if it existed (left untouched)."""
    if not is_local(fs):  # object stores have no folders to make
        try:
            with fs.open(final, "xb") as f:  # S3: PUT with If-None-Match: *
                write(f)
        except FileExistsError:
            return False
        return True
    tmp = _write_tmp(fs, root_path, final, write)
    try:
        os.link(tmp, final)  # fails if `final` exists: create-if-absent
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    return True


def create_json(fs, root_path: str, final: str, value) -> bool:
    """`create_file` of `value` as JSON; True if this call created `final`."""
    data = _json_bytes(value)
    return create_file(fs, root_path, final, lambda f: f.write(data))


def _json_bytes(value) -> bytes:
    return json.dumps(value, indent=1, sort_keys=True).encode()


def read_json(fs, path: str):
    """The parsed JSON at `path`, or None when there is no such file."""
    try:
        return json.loads(fs.cat_file(path))  # one GET on object stores
    except FileNotFoundError:
        return None


def remove(fs, path: str) -> None:
    """Remove a file or a directory tree; nothing if it does not exist."""
    if fs.exists(path):
        fs.rm(path, recursive=True)
