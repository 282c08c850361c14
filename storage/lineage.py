"""Lineage: one JSON record per (stage, round) at <root>/lineage/stage=<stage>/round=NNN.json;
stages of REPEATED_STAGES (review imports) have one per input: round=NNN.<config hash[:16]>.json.

A completed record is immutable: writing a different one for the same (stage, round) is a
StorageError; writing the same one again is a no-op. A record that is not completed (running,
failed) may be replaced by a later attempt; the replaced one is kept under
lineage/_superseded/. `redo_round` supersedes every record of the round.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import uuid
from typing import TYPE_CHECKING

from storage.errors import StorageError
from storage.fsio import atomic_write_json, read_json
from storage.hashing import canonical_json
from storage.records import REPEATED_STAGES, STAGES, LineageRecord
from storage.terms import COMPLETED

if TYPE_CHECKING:
    from storage.workspace import Workspace

_RECORD = re.compile(r"stage=([a-z_]+)/round=(\d+)(?:\.[0-9a-f]+)?\.json$")


def _path(ws: Workspace, stage: str, round: int, key: str = "") -> str:
    name = f"round={int(round):03d}" + (f".{key}" if key else "")
    return ws._abs(f"lineage/stage={stage}/{name}.json")


def _supersede(ws: Workspace, path: str) -> None:
    stage_round = "-".join(path.split("/")[-2:])
    ws.fs.makedirs(ws._abs("lineage/_superseded"), exist_ok=True)
    ws.fs.mv(path, ws._abs(f"lineage/_superseded/{uuid.uuid4().hex[:8]}-{stage_round}"))


def write_lineage(ws: Workspace, record: LineageRecord) -> None:
    """Store `record`; see the module docstring for when that is refused."""
    key = record.config_hash[:16] if record.stage in REPEATED_STAGES else ""
    path = _path(ws, record.stage, record.round, key)
    existing = read_json(ws.fs, path)
    data = record.to_dict()
    if existing is not None:
        if canonical_json(existing) == canonical_json(data):
            return
        if existing["status"] == COMPLETED:
            raise StorageError(
                f"lineage of {record.stage} round {record.round} is completed and immutable; "
                f"redo the round to record it again")
        _supersede(ws, path)
    atomic_write_json(ws.fs, ws.path, path, data)


def read_lineage(ws: Workspace, round: int | None = None) -> list[LineageRecord]:
    """Current records (of one round, or all), ordered by round then stage order."""
    records = []
    for stage in STAGES:
        try:
            names = ws.fs.ls(ws._abs(f"lineage/stage={stage}"), detail=False)
        except FileNotFoundError:
            continue
        for name in names:
            match = _RECORD.search(name)
            if match and (round is None or int(match.group(2)) == round):
                data = read_json(ws.fs, name)
                if data is not None:
                    records.append(LineageRecord.from_dict(data))
    return sorted(records, key=lambda r: (r.round, STAGES.index(r.stage)))


def supersede_round(ws: Workspace, round: int) -> None:
    """Move every record of `round` to lineage/_superseded/ (used by redo_round), except those
    of REPEATED_STAGES."""
    for stage in STAGES:
        if stage in REPEATED_STAGES:
            continue
        path = _path(ws, stage, round)
        if ws.fs.exists(path):
            _supersede(ws, path)


def package_provenance() -> tuple[str, str | None]:
    """(installed ovseg version, git commit of the source tree or None)."""
    try:
        version = importlib.metadata.version("ovseg")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    source = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(["git", "-C", source, "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True)
        return version, out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return version, None

