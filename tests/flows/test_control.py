"""The compute-matched control (`self_training.control`) through the real flows: a `control`
lineage record and checkpoint per round, trained with exactly the round's retraining settings,
resumable, forgotten by a redo, and printed in the job's table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from flows import steps
from flows.commands.run import control_gain, controls_of, round_table
from flows.context import TaskContext
from ovseg_core.train import LOG_NAME, STATE_NAME, read_train_log
from storage.terms import CONTROL, SELF_TRAINING_ROUND, STAGE_ONE
from storage.workspace import Workspace
from tests.flows.conftest import small_config


def _with_control(cfg, on: bool = True):
    return cfg.model_copy(update={"self_training": cfg.self_training.model_copy(
        update={"control": on})})


@pytest.fixture(scope="module")
def run(stage_one_workspace, synthetic_root, tmp_path_factory):
    """Round 1 with the control off, then two rounds with it on (round 1's control is added to
    the completed round, then round 2 runs with its own); returns (config, lineage after the
    first run and round 1's control checkpoint then, the second run's records)."""
    from flows.pipeline import self_training

    ws = tmp_path_factory.mktemp("control") / "ws"
    shutil.copytree(stage_one_workspace, ws)
    cfg = small_config(synthetic_root, ws, rounds=1)
    self_training(cfg)
    store = Workspace(str(ws))
    first = (store.lineage(), store.checkpoint(1, control=True))
    cfg = _with_control(small_config(synthetic_root, ws, rounds=2))
    return cfg, first, self_training(cfg)


def _records(cfg, stage):
    return {r.round: r for r in Workspace(cfg.workspace).lineage() if r.stage == stage}


def _stored(cfg, round: int, control: bool):
    """(training log, trainer state) of a stored checkpoint."""
    folder = Path(Workspace(cfg.workspace).checkpoint(round, control).uri)
    assert (folder / LOG_NAME).is_file()
    state = torch.load(folder / STATE_NAME, map_location="cpu", weights_only=True)
    return read_train_log(folder), state


def test_control_off_trains_and_stores_no_control(run):
    _, (lineage, checkpoint), _ = run
    assert [r.stage for r in lineage] == [STAGE_ONE, "quality_gate", SELF_TRAINING_ROUND]
    assert checkpoint is None


def test_every_round_has_a_measured_control_chained_to_the_previous_one(run):
    cfg, _, records = run
    controls = _records(cfg, CONTROL)
    assert sorted(controls) == [1, 2]
    for r, control in controls.items():
        assert control.status == "completed" and control.parent_round == r - 1
        for key in ("target_miou", "target_seen_miou", "target_unseen_miou"):
            assert 0 <= control.metrics[key] <= 100
        assert control.row_counts == {"train_images": 8, "steps": 3, "batch_size": 2}
    ws = Workspace(cfg.workspace)
    assert controls[1].checkpoint_sha256 != records[0]["checkpoint_sha256"]  # trained
    assert controls[2].checkpoint_sha256 != controls[1].checkpoint_sha256
    for r in (1, 2):
        stored = ws.checkpoint(r, control=True)
        assert stored.sha256 == controls[r].checkpoint_sha256
        assert stored.uri.rstrip("/").endswith(f"checkpoints/control/round={r:03d}")
        assert stored.sha256 != records[r]["checkpoint_sha256"]  # not the round's model
    # round 2's control continues round 1's control, not stage one and not round 1
    parent = steps.control_parent(ws, 2)
    assert (parent.round, parent.checkpoint_sha256) == (1, controls[1].checkpoint_sha256)


def test_control_trains_with_exactly_the_rounds_retraining_settings(run):
    cfg, _, _ = run
    for r in (1, 2):
        control_log, control_state = _stored(cfg, r, control=True)
        round_log, round_state = _stored(cfg, r, control=False)
        assert control_state["train_config"] == round_state["train_config"]
        assert control_state["train_config"]["steps"] == cfg.train.retrain_steps == 3
        assert control_state["train_config"]["batch_size"] == cfg.train.batch_size == 2
        assert control_state["train_config"]["seed"] == cfg.seed + r
        assert [x["step"] for x in control_log] == [x["step"] for x in round_log]
        assert control_log[-1]["step"] == 3
        assert [x["lr"] for x in control_log] == [x["lr"] for x in round_log]
        assert control_state["class_names"] == round_state["class_names"]  # target vocabulary


def test_round_2s_control_is_round_1s_control_trained_on_the_remapped_source(run, tmp_path):
    """Rebuilt outside the flow: round 1's control's model, trained with round 2's retraining
    settings on the source remapped into the target vocabulary, gives control 2's weights."""
    from ovseg_core.checkpoint import file_sha256, load_model
    from ovseg_core.data.mixing import RemappedSamples
    from ovseg_core.device import pick_runtime
    from ovseg_core.train import train

    cfg, _, _ = run
    ctx = TaskContext.open(cfg)
    plan, store = ctx.plan, Workspace(cfg.workspace)
    model = load_model(Path(store.checkpoint(1, control=True).uri))
    source = RemappedSamples(plan.source, plan.source_classes, plan.target_classes,
                             plan.name_map)
    train(model, source, plan.target_classes, plan.target_seen,
          steps.train_config(cfg, retrain=True, seed=cfg.seed + 2), tmp_path,
          pick_runtime("cpu"), progress=False)
    assert file_sha256(tmp_path / "model.safetensors") == store.checkpoint(2, control=True).sha256


def test_rerunning_adds_nothing(run):
    from flows.pipeline import self_training

    cfg, _, records = run
    before = Workspace(cfg.workspace).lineage()
    assert self_training(cfg) == records
    assert Workspace(cfg.workspace).lineage() == before


def test_summary_prints_each_rounds_control_under_it(run):
    cfg, _, records = run
    controls = controls_of(cfg.workspace)
    lines = round_table(records, controls)
    labels = [line[:9].strip() for line in lines[1:]]
    assert labels == ["stage one", "1", "control 1", "2", "control 2"]
    for r in (1, 2):
        m = controls[r]["metrics"]
        row = lines[1 + labels.index(f"control {r}")].split()
        assert row[2:5] == [f"{m[k]:.1f}" for k in ("target_miou", "target_seen_miou",
                                                    "target_unseen_miou")]
        assert row[5:] == ["-", "-", "-"]  # a control has no pseudo-labels
    gain = records[2]["metrics"]["target_unseen_miou"] - controls[2]["metrics"][
        "target_unseen_miou"]
    assert control_gain(records, controls).startswith(
        f"round 2's unseen gain over the control: {gain:+.1f} points")


def test_redo_forgets_the_controls_of_the_redone_and_later_rounds(run, tmp_path):
    cfg, _, _ = run
    ws = tmp_path / "ws"
    shutil.copytree(cfg.workspace, ws)
    copy = cfg.model_copy(update={"workspace": str(ws)})
    steps.redo_round(TaskContext.open(copy), 2)
    store = Workspace(str(ws))
    assert sorted(_records(copy, CONTROL)) == [1]
    assert store.checkpoint(2, control=True) is None
    assert store.checkpoint(1, control=True) is not None
    assert steps.missing_controls(copy, store, 2) == [2]
    assert steps.missing_controls(_with_control(copy, False), store, 2) == []
