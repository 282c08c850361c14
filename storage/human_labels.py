"""The `human_labels` table: masks people corrected in a review tool, imported back.

Layout: `<root>/human_labels/source=<sha256 of the imported file>.parquet`, one file per
imported file, created once (storage.fsio.create_file): importing the same file again adds
nothing, also when two imports race. Rows follow `storage.schema.HUMAN_LABEL_SCHEMA`; masks are
COCO RLE counts at the image's full size, like `pseudo_labels`.

Which labels count for an image: those of the latest import (by `imported_at`) that covers it.
Retraining paints them instead of the image's pseudo-labels (`storage.samples`).
"""

from __future__ import annotations

import posixpath
import re

import pyarrow as pa
import pyarrow.parquet as pq

from storage.fsio import create_file
from storage.records import LineageRecord, utc_now
from storage.schema import HUMAN_LABEL_SCHEMA, conform
from storage.terms import COMPLETED, REVIEW_IMPORT
from storage.workspace import Workspace

FOLDER = "human_labels"
_FILE = re.compile(r"source=([0-9a-f]{64})\.parquet$")

LATEST = """
    SELECT h.* FROM human_labels h
    JOIN (SELECT image_id, arg_max(source_sha256, imported_at) AS sha
          FROM human_labels GROUP BY image_id) latest
      ON latest.image_id = h.image_id AND latest.sha = h.source_sha256"""
"""SQL: the rows of the latest import covering each image (the labels that count)."""


def _relative(sha256: str) -> str:
    return f"{FOLDER}/source={sha256}.parquet"


def files(ws: Workspace) -> list[str]:
    """URLs (or local paths) of the imported files' Parquet tables, by source hash."""
    try:
        names = ws.fs.ls(ws._abs(FOLDER), detail=False)
    except FileNotFoundError:
        return []
    hashes = sorted(m.group(1) for m in (_FILE.search(n) for n in names) if m)
    return [ws.url(_relative(h)) for h in hashes]


def is_imported(ws: Workspace, sha256: str) -> bool:
    return ws.fs.exists(ws._abs(_relative(sha256)))


def write(ws: Workspace, table: pa.Table, sha256: str) -> bool:
    """Store one imported file's rows (cast to HUMAN_LABEL_SCHEMA); False, writing nothing,
    when a file with this content hash was imported before."""
    table = conform(table, HUMAN_LABEL_SCHEMA, {"source_sha256": sha256})

    def put(f):
        pq.write_table(table, f)

    return create_file(ws.fs, ws.path, ws._abs(_relative(sha256)), put)


def lineage_record(round: int, tool: str, source: str, sha256: str, rows: int, images: int,
                   started: str, image_hash: str) -> LineageRecord:
    """The `review_import` lineage record of one imported file."""
    from storage.lineage import package_provenance

    version, commit = package_provenance()
    return LineageRecord(
        stage=REVIEW_IMPORT, round=round, parent_round=None, checkpoint_uri=None,
        checkpoint_sha256=None,
        config={"tool": tool, "source_file": posixpath.basename(source),
                "source_sha256": sha256},
        package_version=version, git_commit=commit, dataset_manifest_hash=image_hash,
        gate_threshold=None, started_at=started, ended_at=utc_now(), status=COMPLETED,
        row_counts={"human_labels": rows, "images": images})
