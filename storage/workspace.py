"""The workspace: everything ovseg keeps at rest, under one fsspec root.

Layout (NNN = round, KKKKK = shard, both zero-padded):
    <root>/pseudo_labels/round=NNN/shard=KKKKK.parquet     one row per region
    <root>/images/round=NNN/shard=KKKKK.parquet            one row per image (also region-less)
    <root>/pseudo_labels/round=NNN/_manifest/shard=KKKKK.json   the shard's commit: key, rows
    <root>/pseudo_labels/round=NNN/_manifest/_round.json        the round's commit
    <root>/pseudo_labels/round=NNN/_manifest/_plan.json         what it labels (fixed at start)
    <root>/checkpoints/round=NNN/...                       see storage.checkpoints
    <root>/checkpoints/control/round=NNN/...               the round's compute-matched control
    <root>/lineage/stage=<stage>/round=NNN.json            see storage.lineage
    <root>/reports/round=NNN/...                           pictures and summaries for people

Readers follow the manifests only: a shard is visible once its manifest entry exists, and the
entry is written after both of its Parquet files are in place.

Concurrent writers (processes, machines) may race on a shard: each writes its data files under
new names (`shard=KKKKK.parquet`, or `shard=KKKKK.<random>.parquet` if that name is taken), never
over another's; the manifest entry is then created if absent (storage.fsio.create_json), so
exactly one writer commits. A loser deletes its own data files, then returns the winner's
ShardInfo if the winner used the same key, or raises StorageError if it used another key.
The round entry is created the same way. Files of killed writers are left unreferenced.
"""

from __future__ import annotations

import posixpath
import re
import uuid

import pyarrow as pa
import pyarrow.parquet as pq

from storage import checkpoints, lineage
from storage.errors import StorageError
from storage.fsio import create_file, create_json, open_root, read_json, remove
from storage.records import CheckpointRecord, ImageRegions, LineageRecord, ShardInfo, utc_now
from storage.rows import shard_tables
from storage.schema import IMAGES_SCHEMA, PSEUDO_LABEL_SCHEMA, SCHEMA_VERSION, conform

_SHARD_ENTRY = re.compile(r"shard=(\d+)\.json$")
_ROUND_DIR = re.compile(r"round=(\d+)$")


class Workspace:
    """The store rooted at a local path or an fsspec URL (`memory://ws`, `s3://bucket/ws`)."""

    def __init__(self, root: str):
        self.fs, self.path, self.root = open_root(root)

    def __repr__(self) -> str:
        return f"Workspace({self.root!r})"

    # ---- layout
    def url(self, relative: str) -> str:
        """The full URL (or local path) of a path relative to the root."""
        return self.fs.unstrip_protocol(self._abs(relative)) if self.root != self.path \
            else self._abs(relative)

    def _abs(self, relative: str) -> str:
        return posixpath.join(self.path, relative)

    @staticmethod
    def _round_part(round: int) -> str:
        return f"round={int(round):03d}"

    def _manifest_dir(self, round: int) -> str:
        return self._abs(f"pseudo_labels/{self._round_part(round)}/_manifest")

    def _shard_entry(self, round: int, shard: int) -> str:
        return posixpath.join(self._manifest_dir(round), f"shard={int(shard):05d}.json")

    def _round_entry(self, round: int) -> str:
        return posixpath.join(self._manifest_dir(round), "_round.json")

    def _plan_entry(self, round: int) -> str:
        return posixpath.join(self._manifest_dir(round), "_plan.json")

    # ---- the round's plan: what it labels, fixed when it starts
    def round_plan(self, round: int) -> dict | None:
        """The plan the round started with (its image ids, gates, settings), or None."""
        return read_json(self.fs, self._plan_entry(round))

    def put_round_plan(self, round: int, plan: dict) -> dict:
        """Record the round's plan unless one is recorded (the first writer wins, so a resumed
        or racing run labels the same images); returns the recorded plan."""
        create_json(self.fs, self.path, self._plan_entry(round), plan)
        return self.round_plan(round)

    # ---- shards
    def shard_entry(self, round: int, shard: int) -> dict | None:
        """The committed shard's manifest entry (key, rows, files), or None."""
        return read_json(self.fs, self._shard_entry(round, shard))

    def is_shard_committed(self, round: int, shard: int, key: str) -> bool:
        """True if the shard is committed with `key`; False if absent.

        Raises StorageError if it was committed with a different key (the inputs changed:
        call `redo_round` to recompute the round).
        """
        entry = self.shard_entry(round, shard)
        if entry is None:
            return False
        if entry["key"] != key:
            raise StorageError(
                f"shard {shard} of round {round} was committed with key {entry['key'][:12]}, "
                f"not {key[:12]}: its inputs changed; redo the round to recompute it")
        return True

    def write_shard(self, round: int, shard: int, key: str,
                    images: list[ImageRegions]) -> ShardInfo:
        """Encode, write and commit one shard; a no-op returning the stored info if the shard
        is already committed with the same key. Raises StorageError for another key, or when
        the round is already committed."""
        if self.is_shard_committed(round, shard, key):
            return self._shard_info(self.shard_entry(round, shard))
        if self.is_round_committed(round):
            raise StorageError(f"round {round} is committed; redo it before writing shard {shard}")
        regions, image_rows = shard_tables(round, shard, images)
        return self.write_shard_tables(round, shard, key, regions, image_rows)

    def write_shard_tables(self, round: int, shard: int, key: str, pseudo_labels: pa.Table,
                           images: pa.Table) -> ShardInfo:
        """Commit already-built tables (cast to PSEUDO_LABEL_SCHEMA / IMAGES_SCHEMA) as a shard;
        same rules as `write_shard`, which encodes records and calls this."""
        if self.is_shard_committed(round, shard, key):
            return self._shard_info(self.shard_entry(round, shard))
        if self.is_round_committed(round):
            raise StorageError(f"round {round} is committed; redo it before writing shard {shard}")
        provenance = {"round": round, "shard": shard, "key": key}
        stem = f"{self._round_part(round)}/shard={int(shard):05d}"
        files = [self._create_parquet(f"{kind}/{stem}", conform(table, schema, provenance))
                 for kind, table, schema in (("pseudo_labels", pseudo_labels, PSEUDO_LABEL_SCHEMA),
                                             ("images", images, IMAGES_SCHEMA))]
        entry = {
            "round": int(round), "shard": int(shard), "key": key, "rows": pseudo_labels.num_rows,
            "images": images.num_rows, "pseudo_labels": files[0], "images_file": files[1],
            "schema_version": SCHEMA_VERSION, "committed_at": utc_now(),
        }
        if create_json(self.fs, self.path, self._shard_entry(round, shard), entry):
            return self._shard_info(entry)
        # another writer committed the shard first: drop our files, keep its commit
        for relative in files:
            remove(self.fs, self._abs(relative))
        self.is_shard_committed(round, shard, key)  # StorageError if committed with another key
        return self._shard_info(self.shard_entry(round, shard))

    def _create_parquet(self, stem: str, table: pa.Table) -> str:
        """Write `table` to a new file `<stem>.parquet` (or `<stem>.<random>.parquet` if that
        name is taken by a racing or killed writer); returns its path relative to the root.
        Data files are never overwritten, so a manifest always names the files its writer
        wrote."""
        def write(f):
            pq.write_table(table, f)

        for suffix in ("", f".{uuid.uuid4().hex[:12]}"):
            relative = f"{stem}{suffix}.parquet"
            if create_file(self.fs, self.path, self._abs(relative), write):
                return relative
        raise StorageError(f"could not create a data file for {stem} under {self.root}")

    def _shard_info(self, entry: dict) -> ShardInfo:
        return ShardInfo(round=entry["round"], shard=entry["shard"], key=entry["key"],
                         rows=entry["rows"], images=entry["images"],
                         pseudo_labels_uri=self.url(entry["pseudo_labels"]),
                         images_uri=self.url(entry["images_file"]),
                         committed_at=entry["committed_at"])

    def shard_entries(self, round: int) -> list[dict]:
        """Manifest entries of the round's committed shards, by shard number."""
        try:
            names = self.fs.ls(self._manifest_dir(round), detail=False)
        except FileNotFoundError:
            return []
        entries = [read_json(self.fs, n) for n in sorted(names) if _SHARD_ENTRY.search(n)]
        return [e for e in entries if e is not None]

    def committed_shards(self, round: int) -> dict[int, str]:
        """{shard number: key} of the round's committed shards."""
        return {e["shard"]: e["key"] for e in self.shard_entries(round)}

    def rounds(self) -> list[int]:
        """Round numbers that hold at least one committed shard, ascending."""
        return [r for r in self._started_rounds() if self.shard_entries(r)]

    # ---- rounds
    def commit_round(self, round: int, expected_shards: int) -> None:
        """Mark the round complete once shards 0..expected_shards-1 are all committed.

        Idempotent; raises StorageError listing the missing shards otherwise.
        """
        shards = self.committed_shards(round)
        missing = sorted(set(range(expected_shards)) - set(shards))
        extra = sorted(set(shards) - set(range(expected_shards)))
        if missing or extra:
            raise StorageError(f"round {round} cannot be committed: missing shards {missing}, "
                               f"unexpected shards {extra}")
        committed = {str(k): v for k, v in shards.items()}
        entries = self.shard_entries(round)
        created = create_json(self.fs, self.path, self._round_entry(round), {
            "round": int(round), "shards": committed,
            "rows": sum(e["rows"] for e in entries), "images": sum(e["images"] for e in entries),
            "committed_at": utc_now(),
        })
        if not created and self.round_entry(round)["shards"] != committed:
            raise StorageError(f"round {round} was committed with other shards")

    def is_round_committed(self, round: int) -> bool:
        return self.fs.exists(self._round_entry(round))

    def round_entry(self, round: int) -> dict | None:
        """The round's commit record (shards, rows, images, committed_at), or None."""
        return read_json(self.fs, self._round_entry(round))

    def redo_round(self, round: int) -> None:
        """Drop the round so it can be recomputed: its commit, shards, checkpoint, its control's
        checkpoint, and lineage records (the control's too; moved to lineage/_superseded/).
        Readers stop seeing the shards first."""
        remove(self.fs, self._round_entry(round))
        remove(self.fs, self._manifest_dir(round))
        remove(self.fs, self._abs(f"pseudo_labels/{self._round_part(round)}"))
        remove(self.fs, self._abs(f"images/{self._round_part(round)}"))
        checkpoints.remove_checkpoint(self, round)
        checkpoints.remove_checkpoint(self, round, control=True)
        lineage.supersede_round(self, round)

    def redo_from(self, round: int) -> list[int]:
        """Drop `round` and every later round the store holds anything of (plan, shards,
        checkpoints, lineage, the control's too), latest first: a later round was labelled and
        trained from an earlier one's checkpoint, so it cannot outlive it (and an interrupted
        redo never leaves a later round on a dropped parent). Returns the rounds dropped,
        ascending."""
        later = {r.round for r in self.lineage() if r.round > round} | {
            r for r in self._started_rounds() if r > round}
        dropped = sorted(later | {round})
        for r in reversed(dropped):
            self.redo_round(r)
        return dropped

    def _started_rounds(self) -> list[int]:
        """Round numbers with a folder under pseudo_labels/ (a plan, shards or a commit)."""
        try:
            names = self.fs.ls(self._abs("pseudo_labels"), detail=False)
        except FileNotFoundError:
            return []
        found = (_ROUND_DIR.search(n.rstrip("/")) for n in names)
        return sorted(int(m.group(1)) for m in found if m)

    # ---- checkpoints, lineage, reports
    def put_checkpoint(self, round: int, local_dir: str, control: bool = False
                       ) -> CheckpointRecord:
        """Copy a local checkpoint directory to <root>/checkpoints/round=NNN/ (`control`: to
        <root>/checkpoints/control/round=NNN/, the round's control)."""
        return checkpoints.put_checkpoint(self, round, local_dir, control)

    def fetch_checkpoint(self, uri: str, local_dir: str) -> str:
        """Copy a stored checkpoint to `local_dir` (sha256 verified); returns `local_dir`."""
        return checkpoints.fetch_checkpoint(self, uri, local_dir)

    def checkpoint(self, round: int, control: bool = False) -> CheckpointRecord | None:
        """The round's stored checkpoint (`control`: its control's), or None."""
        return checkpoints.checkpoint_record(self, round, control)

    def write_lineage(self, record: LineageRecord) -> None:
        lineage.write_lineage(self, record)

    def lineage(self, round: int | None = None) -> list[LineageRecord]:
        return lineage.read_lineage(self, round)

    def reports_dir(self, round: int) -> str:
        """URL (or local path) of <root>/reports/round=NNN, created if missing."""
        path = self._abs(f"reports/{self._round_part(round)}")
        self.fs.makedirs(path, exist_ok=True)
        return self.url(f"reports/{self._round_part(round)}")
