"""`ovseg run --redo-round R` recomputes R and every later round: a later round was labelled
and trained from R's checkpoint, so it must not outlive it."""

from __future__ import annotations

import shutil

import yaml

from flows.cli import main
from storage.workspace import Workspace
from tests.flows.conftest import small_config


def test_redo_round_1_recomputes_round_2_from_the_new_round_1(
        prefect_api, synthetic_root, stage_one_workspace, tmp_path, capsys):
    from flows.pipeline import self_training

    ws = tmp_path / "ws"
    shutil.copytree(stage_one_workspace, ws)
    cfg = small_config(synthetic_root, ws, rounds=2)
    self_training(cfg)
    before = {r.round: r for r in Workspace(str(ws)).lineage()
              if r.stage == "self_training_round"}
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    capsys.readouterr()

    assert main(["run", "--config", str(config), "--redo-round", "1"]) == 0
    assert "forgot round 1 and the round(s) trained from it: 2" in capsys.readouterr().out
    after = {r.round: r for r in Workspace(str(ws)).lineage()
             if r.stage == "self_training_round"}
    assert sorted(after) == [1, 2]
    for r in (1, 2):  # both recomputed (new records), round 2 after the new round 1 ended
        assert after[r].started_at > before[r].ended_at
    assert after[2].started_at >= after[1].ended_at
    superseded = {p.name.split("round=")[1] for p in
                  (ws / "lineage" / "_superseded").glob("*stage=self_training_round-*.json")}
    assert superseded == {"001.json", "002.json"}  # the old records of both are kept aside
