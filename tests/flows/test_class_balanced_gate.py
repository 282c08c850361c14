"""The class-balanced gate: per-class gates from the round's own region confidences, stored on
every row, and recomputable in SQL from what the store holds."""

from __future__ import annotations

import shutil

import pytest

from storage.query import run_sql
from tests.flows.conftest import small_config


def test_a_round_gates_each_class_at_its_capped_confidence_quantile(
        prefect_api, synthetic_root, stage_one_workspace, tmp_path):
    from flows.pipeline import round_flow

    ws = tmp_path / "ws"
    shutil.copytree(stage_one_workspace, ws)
    cfg = small_config(synthetic_root, ws, rounds=1)
    cap = 0.99  # above every median here, so the quantiles decide
    st = cfg.self_training.model_copy(update={"gate_threshold": cap, "class_balance": 0.5,
                                              "calibration_images": 256})
    cfg = cfg.model_copy(update={"self_training": st})
    round_flow(cfg)(cfg, 1)
    rows = run_sql(str(ws), """
        SELECT class_id, least(?, quantile_cont(confidence, 0.5)) AS expected,
               min(gate_threshold) AS lo, max(gate_threshold) AS hi,
               count(*) FILTER (WHERE gated <> (confidence > gate_threshold)) AS wrong
        FROM pseudo_labels WHERE round = 1 GROUP BY class_id ORDER BY class_id""",
                   [cap]).to_pylist()
    assert rows, "the round wrote no regions"
    for row in rows:  # every image is a calibration image here, so SQL sees the same regions
        assert row["lo"] == row["hi"] == pytest.approx(row["expected"], abs=1e-6), row
        assert row["wrong"] == 0, row
    assert any(row["expected"] < cap for row in rows), "no class got a gate below the cap"
