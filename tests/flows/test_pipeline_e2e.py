"""The real flows through Prefect on a small synthetic dataset: tables, lineage, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

from ovseg_core.checkpoint import file_sha256
from storage.query import run_sql
from storage.samples import PseudoLabelSamples
from storage.workspace import Workspace
from tests.flows.conftest import small_config


@pytest.fixture(scope="module")
def finished_run(prefect_api, synthetic_root, tmp_path_factory):
    from flows.pipeline import self_training

    cfg = small_config(synthetic_root, tmp_path_factory.mktemp("e2e") / "ws", rounds=2)
    records = self_training(cfg)
    return cfg, records


def test_lineage_chains_rounds_and_checkpoints(finished_run):
    cfg, records = finished_run
    ws = Workspace(cfg.workspace)
    assert [(r["stage"], r["round"], r["parent_round"]) for r in records] == [
        ("stage_one", 0, None), ("self_training_round", 1, 0), ("self_training_round", 2, 1)]
    for r in records:
        assert r["status"] == "completed"
        stored = ws.checkpoint(r["round"])
        assert stored.sha256 == r["checkpoint_sha256"]
        assert file_sha256(f"{stored.uri}/model.safetensors") == r["checkpoint_sha256"]
        assert 0 <= r["metrics"]["target_miou"] <= 100
    assert records[1]["checkpoint_sha256"] != records[0]["checkpoint_sha256"]  # retrained
    assert "source_val_miou" in records[0]["metrics"]


def test_pseudo_label_tables_cover_every_target_image(finished_run):
    cfg, records = finished_run
    ws = Workspace(cfg.workspace)
    for r in (1, 2):
        images = run_sql(ws, "SELECT count(*) AS n FROM images WHERE round = ?", [r])
        assert images.column("n")[0].as_py() == 6
        counts = run_sql(ws, "SELECT count(*) AS n, count(DISTINCT shard) AS shards, "
                         "min(gate_threshold) AS g FROM pseudo_labels WHERE round = ?", [r])
        row = counts.to_pylist()[0]
        assert row["n"] == ws.round_entry(r)["rows"] == records[r]["row_counts"]["regions"]
        assert row["shards"] == 2 and row["g"] == 0.0
        sha = run_sql(ws, "SELECT DISTINCT checkpoint_sha256 AS s FROM pseudo_labels "
                      "WHERE round = ?", [r]).column("s").to_pylist()
        assert sha == [records[r - 1]["checkpoint_sha256"]]  # labelled by the parent


def test_retraining_reads_painted_pseudo_labels(finished_run, synthetic_root):
    cfg, _ = finished_run
    from PIL import Image

    def load(image_id):
        return np.asarray(
            Image.open(synthetic_root / "target" / "images" / image_id).convert("RGB"))

    samples = PseudoLabelSamples(Workspace(cfg.workspace), 1, load)
    assert len(samples) > 0
    image, label = samples[0]
    assert image.shape[:2] == label.shape and label.dtype == np.uint16
    assert (label != 65535).any()


def test_rerunning_a_finished_run_changes_nothing(finished_run):
    from flows.pipeline import self_training

    cfg, records = finished_run
    again = self_training(cfg)
    assert again == records


def test_report_pictures_are_written(finished_run):
    cfg, _ = finished_run
    ws = Workspace(cfg.workspace)
    folder = ws.reports_dir(2)
    names = {p.rsplit("/", 1)[-1] for p in ws.fs.ls(folder, detail=False)}
    assert {"index.md", "miou.png", "painting_regions.png", "sample_0.png"} <= names


def test_next_round_runs_stage_one_with_its_report_then_one_more_round(
        prefect_api, synthetic_root, tmp_path):
    from flows.pipeline import next_round

    cfg = small_config(synthetic_root, tmp_path / "ws", rounds=1)
    first = next_round(cfg)
    ws = Workspace(cfg.workspace)
    assert first["stage"] == "stage_one"
    assert ws.fs.exists(f"{ws.reports_dir(0)}/index.md")
    second = next_round(cfg)
    assert (second["stage"], second["round"], second["parent_round"]) == (
        "self_training_round", 1, 0)
