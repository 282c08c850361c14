"""Checkpoint directories in the store: <root>/checkpoints/round=NNN/ (stage one and the rounds),
<root>/checkpoints/control/round=NNN/ (the rounds' compute-matched controls).

A checkpoint directory holds `model.safetensors` + `config.json` (and maybe trainer state).
Its files are copied first and a `_checkpoint.json` marker (sha256 of `model.safetensors`, file
sizes) is written last: a copy interrupted half-way has no marker and is not a checkpoint.
"""

from __future__ import annotations

import os
import posixpath
from typing import TYPE_CHECKING

from storage.errors import StorageError
from storage.fsio import atomic_write_json, read_json, remove, url_to_fs
from storage.hashing import stream_sha256
from storage.records import CheckpointRecord, utc_now

if TYPE_CHECKING:
    from storage.workspace import Workspace

WEIGHTS = "model.safetensors"
MARKER = "_checkpoint.json"


def _relative(round: int, control: bool = False) -> str:
    return f"checkpoints/{'control/' if control else ''}round={int(round):03d}"


def _local_files(local_dir: str) -> list[str]:
    """Relative POSIX paths of all files under `local_dir`, sorted."""
    out = []
    for dirpath, _, names in os.walk(local_dir):
        for name in names:
            rel = os.path.relpath(os.path.join(dirpath, name), local_dir)
            out.append(rel.replace(os.sep, "/"))
    return sorted(out)


def checkpoint_record(ws: Workspace, round: int, control: bool = False
                      ) -> CheckpointRecord | None:
    """The round's stored checkpoint (`control`: its control's), or None."""
    relative = _relative(round, control)
    marker = read_json(ws.fs, ws._abs(f"{relative}/{MARKER}"))
    if marker is None:
        return None
    return CheckpointRecord(uri=ws.url(relative), sha256=marker["sha256"])


def put_checkpoint(ws: Workspace, round: int, local_dir: str,
                   control: bool = False) -> CheckpointRecord:
    """Copy `local_dir` to the round's checkpoint folder (`control`: its control's); a no-op if
    the same weights are there.

    Raises StorageError if `local_dir` has no model.safetensors, or the folder already holds a
    checkpoint with other weights (redo the round to replace it).
    """
    weights = os.path.join(local_dir, WEIGHTS)
    if not os.path.isfile(weights):
        raise StorageError(f"{local_dir} is not a checkpoint directory: no {WEIGHTS}")
    with open(weights, "rb") as f:
        sha = stream_sha256(f)
    existing = checkpoint_record(ws, round, control)
    if existing is not None:
        if existing.sha256 != sha:
            whose = f"round {round}'s control" if control else f"round {round}"
            raise StorageError(f"{whose} already has checkpoint {existing.sha256[:12]}; "
                               f"redo the round to store another one")
        return existing
    relative = _relative(round, control)
    dest = ws._abs(relative)
    remove(ws.fs, dest)  # leftovers of an interrupted copy
    files = _local_files(local_dir)
    for rel in files:
        target = posixpath.join(dest, rel)
        ws.fs.makedirs(posixpath.dirname(target), exist_ok=True)
        ws.fs.put_file(os.path.join(local_dir, rel), target)
    sizes = {rel: os.path.getsize(os.path.join(local_dir, rel)) for rel in files}
    atomic_write_json(ws.fs, ws.path, posixpath.join(dest, MARKER),
                      {"round": int(round), "sha256": sha, "files": sizes, "stored_at": utc_now()})
    return CheckpointRecord(uri=ws.url(relative), sha256=sha)


def fetch_checkpoint(ws: Workspace, uri: str, local_dir: str) -> str:
    """Copy the checkpoint at `uri` (a URL or local path) into `local_dir`, verifying the
    weights' sha256. Returns `local_dir`."""
    fs, path = url_to_fs(uri)
    marker = read_json(fs, posixpath.join(path, MARKER))
    if marker is None:
        raise StorageError(f"{uri} is not a stored checkpoint (no {MARKER})")
    os.makedirs(local_dir, exist_ok=True)
    for rel in marker["files"]:
        target = os.path.join(local_dir, *rel.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fs.get_file(posixpath.join(path, rel), target)
    with open(os.path.join(local_dir, WEIGHTS), "rb") as f:
        if stream_sha256(f) != marker["sha256"]:
            raise StorageError(f"checkpoint {uri} is corrupt: sha256 of {WEIGHTS} differs")
    return local_dir


def remove_checkpoint(ws: Workspace, round: int, control: bool = False) -> None:
    """Drop the round's checkpoint (`control`: its control's; marker first, so it stops being a
    checkpoint at once)."""
    relative = _relative(round, control)
    remove(ws.fs, ws._abs(f"{relative}/{MARKER}"))
    remove(ws.fs, ws._abs(relative))
