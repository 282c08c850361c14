"""Lineage records (immutable, the `rounds` view), checkpoints, reports, shared constants."""

import json

import pytest

from storage.errors import StorageError
from storage.hashing import config_hash
from storage.query import run_sql
from storage.records import LineageRecord
from tests.storage.conftest import make_images


def _record(round=1, status="completed", **changes):
    values = dict(stage="self_training_round", round=round, parent_round=round - 1,
                  checkpoint_uri="memory://x/checkpoints/round=001", checkpoint_sha256="a" * 64,
                  config={"model": {"preset": "tiny"}, "gate": 0.9}, package_version="0.1.0",
                  git_commit="abc", dataset_manifest_hash="d" * 64, gate_threshold=0.9,
                  started_at="2026-11-02T10:00:00+00:00", ended_at="2026-11-02T10:05:30+00:00",
                  status=status, row_counts={"rows": 10, "images": 3}, metrics={"miou": 0.5})
    values.update(changes)
    return LineageRecord(**values)


def test_lineage_is_immutable_once_completed(workspace):
    record = _record()
    assert record.config_hash == config_hash(record.config)
    workspace.write_lineage(record)
    workspace.write_lineage(_record())  # the same record again: a no-op
    with pytest.raises(StorageError, match="immutable"):
        workspace.write_lineage(_record(metrics={"miou": 0.9}))
    assert workspace.lineage() == [record]


def test_failed_attempts_are_superseded_and_redo_clears_the_round(workspace):
    workspace.write_lineage(_record(status="failed", ended_at=None))
    workspace.write_lineage(_record())
    workspace.write_lineage(_record(round=0, stage="stage_one", parent_round=None))
    assert [(r.stage, r.round, r.status) for r in workspace.lineage()] == [
        ("stage_one", 0, "completed"), ("self_training_round", 1, "completed")]
    workspace.redo_round(1)
    assert [r.round for r in workspace.lineage()] == [0]
    workspace.write_lineage(_record(metrics={"miou": 0.9}))
    assert workspace.lineage(round=1)[0].metrics == {"miou": 0.9}


def test_rounds_view_exposes_lineage(workspace):
    workspace.write_lineage(_record())
    row = run_sql(workspace, "SELECT stage, round, parent_round, status, "
                             "epoch(ended_at) - epoch(started_at) AS seconds, "
                             "json_extract(metrics, '$.miou')::DOUBLE AS miou, config "
                             "FROM rounds").to_pylist()[0]
    assert (row["stage"], row["round"], row["parent_round"], row["status"]) == (
        "self_training_round", 1, 0, "completed")
    assert row["seconds"] == 330 and row["miou"] == 0.5
    assert json.loads(row["config"]) == {"model": {"preset": "tiny"}, "gate": 0.9}


def test_unknown_stage_or_status_is_refused():
    with pytest.raises(StorageError, match="stage"):
        _record(stage="train")
    with pytest.raises(StorageError, match="status"):
        _record(status="done")


def _checkpoint_dir(path, weights=b"weights-1"):
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.safetensors").write_bytes(weights)
    (path / "config.json").write_text('{"preset": "tiny"}')
    (path / "state").mkdir(exist_ok=True)
    (path / "state" / "trainer.json").write_text('{"step": 3}')
    return str(path)


def test_checkpoints_round_trip_with_their_hash(workspace, tmp_path):
    import hashlib

    record = workspace.put_checkpoint(0, _checkpoint_dir(tmp_path / "ckpt"))
    assert record.sha256 == hashlib.sha256(b"weights-1").hexdigest()
    assert record.uri.endswith("checkpoints/round=000")
    assert workspace.put_checkpoint(0, str(tmp_path / "ckpt")) == record  # idempotent
    assert workspace.checkpoint(0) == record
    local = workspace.fetch_checkpoint(record.uri, str(tmp_path / "fetched"))
    assert (tmp_path / "fetched" / "model.safetensors").read_bytes() == b"weights-1"
    assert (tmp_path / "fetched" / "state" / "trainer.json").read_text() == '{"step": 3}'
    assert local == str(tmp_path / "fetched")
    with pytest.raises(StorageError, match="already has checkpoint"):
        workspace.put_checkpoint(0, _checkpoint_dir(tmp_path / "other", b"weights-2"))
    with pytest.raises(StorageError, match="not a checkpoint directory"):
        workspace.put_checkpoint(1, str(tmp_path))
    with pytest.raises(StorageError, match="not a stored checkpoint"):
        workspace.fetch_checkpoint(workspace.url("checkpoints/round=009"), str(tmp_path / "x"))


def test_redo_drops_the_round_checkpoint_and_shards(workspace, tmp_path):
    workspace.put_checkpoint(1, _checkpoint_dir(tmp_path / "ckpt"))
    workspace.write_shard(1, 0, "k", make_images(2, [1]))
    workspace.commit_round(1, 1)
    workspace.redo_round(1)
    assert workspace.checkpoint(1) is None and not workspace.is_round_committed(1)
    assert run_sql(workspace, "SELECT count(*) AS n FROM pseudo_labels")["n"][0].as_py() == 0
    replaced = workspace.put_checkpoint(1, _checkpoint_dir(tmp_path / "new", b"weights-2"))
    assert workspace.checkpoint(1) == replaced


def test_reports_dir_is_under_the_root(workspace):
    url = workspace.reports_dir(2)
    assert url.startswith(workspace.root) and url.endswith("reports/round=002")
    assert workspace.fs.isdir(workspace.path + "/reports/round=002")


def test_redo_from_drops_every_later_round_and_keeps_earlier_ones(workspace, tmp_path):
    """A later round was trained from the redone round's checkpoint: it goes too (rows,
    checkpoint, lineage), also one that only started (its plan folder); earlier rounds stay."""
    for r in (1, 2, 3):
        workspace.put_checkpoint(r, _checkpoint_dir(tmp_path / f"ckpt{r}", f"w{r}".encode()))
        workspace.write_shard(r, 0, "k", make_images(2, [r]))
        workspace.commit_round(r, 1)
        workspace.write_lineage(_record(round=r, checkpoint_sha256=str(r) * 64))
    workspace.fs.makedirs(workspace._abs("pseudo_labels/round=004/_manifest"), exist_ok=True)
    workspace.fs.touch(workspace._abs("pseudo_labels/round=004/_manifest/_plan.json"))

    assert workspace.redo_from(2) == [2, 3, 4]
    assert [r.round for r in workspace.lineage()] == [1]
    assert workspace.rounds() == [1] and workspace.checkpoint(1) is not None
    assert all(workspace.checkpoint(r) is None for r in (2, 3))
    assert workspace._started_rounds() == [1]
    rows = run_sql(workspace, "SELECT DISTINCT round FROM pseudo_labels")
    assert rows["round"].to_pylist() == [1]
    assert workspace.redo_from(5) == [5]  # nothing there: a no-op
