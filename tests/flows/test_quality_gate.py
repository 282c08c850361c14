"""The quality gate checks a round's committed pseudo-labels before retraining: a failing check
stops the round (recorded, named in one message) until the round is accepted; a passing gate
is recorded too, and a completed gate is not checked again."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from flows.config import QualitySettings, RunConfig
from flows.labelling import image_regions
from storage.records import ImageRegions
from storage.stats import quality_values
from storage.workspace import Workspace
from tests.flows.conftest import small_config
from tests.flows.test_painting_rule import _rect, _region


def _gate_records(ws) -> list:
    return [r for r in Workspace(str(ws)).lineage(1) if r.stage == "quality_gate"]


def _with_quality(cfg: RunConfig, **settings) -> RunConfig:
    return cfg.model_copy(update={"quality": QualitySettings(**settings)})


def test_a_failing_check_stops_the_round_until_it_is_accepted(
        prefect_api, synthetic_root, stage_one_workspace, tmp_path):
    from flows.context import TaskContext
    from flows.pipeline import round_flow
    from flows.quality_gate import check_round
    from ovseg_core.errors import OvsegError

    ws = tmp_path / "ws"
    shutil.copytree(stage_one_workspace, ws)
    cfg = small_config(synthetic_root, ws, rounds=1)  # its refiner is a random tiny SAM
    strict = _with_quality(cfg, min_trusted_share=0.5)
    state = round_flow(strict)(strict, 1, return_state=True)
    assert state.is_failed()
    with pytest.raises(OvsegError) as stopped:
        state.result()
    # the graph shows the gate as a failed task of its own; retraining never started
    tasks = _task_states(state.state_details.flow_run_id)
    assert tasks["quality-gate-round1"] == "FAILED", tasks
    assert tasks["commit-round1"] == "COMPLETED" and "retrain-round1" not in tasks
    assert "stopped by the quality gate" in state.message
    store = Workspace(str(ws))
    assert store.is_round_committed(1) and store.checkpoint(1) is None  # stopped before training
    values = quality_values(store, 1)
    assert values["accepted"] == 0 < values["gated"]
    text = str(stopped.value)
    assert "\n" not in text
    assert (f"round 1 stopped by the quality gate before retraining: trusted_share 0.000 (0 of "
            f"{values['gated']} gated regions) < quality.min_trusted_share 0.5") in text
    for way in ("are committed", "ovseg sql", "--accept-round 1", "--redo-round 1"):
        assert way in text
    [record] = _gate_records(ws)
    assert record.status == "failed" and record.config["accepted"] is False
    assert record.config["min_trusted_share"] == 0.5
    assert record.metrics["trusted_share"] == 0.0 and record.metrics["failed_checks"] == 1
    assert record.metrics["coverage"] == values["coverage"]

    # a passing gate (default thresholds) is recorded with its values, and not checked again
    passing = tmp_path / "passing"
    shutil.copytree(ws, passing)
    default = cfg.model_copy(update={"workspace": str(passing)})
    outcome = check_round(TaskContext.open(default), 1)
    assert [c.check for c in outcome.checks] == ["labelled_share", "coverage"]
    assert all(c.passed for c in outcome.checks) and not outcome.stops
    [record] = _gate_records(passing)
    assert record.status == "completed" and record.metrics["failed_checks"] == 0
    assert record.metrics["labelled_share"] == values["labelled_share"] == 1.0
    assert record.row_counts == {k: values[k] for k in ("images", "labelled_images", "gated",
                                                        "accepted")}
    again = strict.model_copy(update={"workspace": str(passing)})
    assert check_round(TaskContext.open(again), 1).skipped  # a resumed round: gate completed

    # the same run with the round accepted goes on; the gate's record becomes completed
    accepted = _with_quality(cfg, min_trusted_share=0.5, accept_rounds=[1])
    done = round_flow(accepted)(accepted, 1)
    assert done["status"] == "completed" and store.checkpoint(1) is not None
    [record] = _gate_records(ws)
    assert record.status == "completed" and record.config["accepted"] is True
    assert record.metrics["failed_checks"] == 1
    assert len(list((ws / "lineage" / "_superseded").iterdir())) == 1  # the failed record
    assert _artifact("ovseg-quality-round-1").startswith(
        "# ovseg quality gate: round 1\n\n**accepted")


def _task_states(flow_run_id) -> dict[str, str]:
    """{task run name: state type} of a flow run's task runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.name: run.state_type.value for run in runs}


def _artifact(key: str) -> str:
    """The Markdown of the latest version of the Prefect artifact `key`."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC, limit=1)
    return found[0].data


def test_the_gate_values_of_hand_made_rounds(tmp_path):
    """Two rounds of known areas (8 x 10 images): the values, the checks and the message."""
    from flows.context import TaskContext
    from flows.quality_gate import check_round, checks
    from ovseg_core.errors import OvsegError

    names = [f"class{i}" for i in range(6)]
    sha = "s" * 64
    first = [  # a.png paints 42 (SAM) + 10 (coarse) px; b.png paints nothing; c.png unreadable
        image_regions("a.png", (8, 10), [
            _region(1, _rect(0, 5, 0, 6), 0.95, "refined", 0.9, 0.7, refined=_rect(0, 6, 0, 7)),
            _region(2, _rect(6, 8, 0, 5), 0.97, "coarse", 0.3, 0.2, refined=_rect(0, 1, 0, 1)),
            _region(3, _rect(0, 3, 6, 10), 0.92, "none", 0.6, 0.1, refined=_rect(0, 8, 0, 10)),
        ], names, 0.9, 0.9, sha),
        image_regions("b.png", (8, 10), [_region(4, _rect(0, 8, 0, 10), 0.4, "none")],
                      names, 0.9, 0.9, sha),
        ImageRegions("c.png", 0, 0, 0.9, sha, problem="truncated"),
    ]
    second = [  # a.png paints 80 + 10 px, capped at its 80; b.png paints 40 px of class 5
        image_regions("a.png", (8, 10), [
            _region(1, _rect(0, 5, 0, 6), 0.95, "refined", 0.9, 0.7, refined=_rect(0, 8, 0, 10)),
            _region(2, _rect(6, 8, 0, 5), 0.97, "coarse", 0.5, 0.2, refined=_rect(0, 1, 0, 1)),
        ], names, 0.9, 0.9, sha),
        image_regions("b.png", (8, 10), [_region(5, _rect(0, 4, 0, 10), 0.95, "coarse", 0.25,
                                                 0.1, refined=_rect(0, 1, 0, 1))],
                      names, 0.9, 0.9, sha),
    ]
    ws = Workspace(str(tmp_path / "ws"))
    for round, records in ((1, first), (2, second)):
        ws.write_shard(round, 0, "k", records)
        ws.commit_round(round, 1)

    one = quality_values(ws, 1)
    assert (one["images"], one["labelled_images"], one["gated"], one["accepted"]) == (2, 1, 3, 1)
    assert one["labelled_share"] == 0.5
    assert one["coverage"] == pytest.approx(52 / 160)
    assert one["trusted_share"] == pytest.approx(1 / 3)
    assert one["sam_iou_mean"] == pytest.approx((0.9 + 0.3 + 0.6) / 3)
    assert one["class_shares"] == pytest.approx({"class1": 42 / 52, "class2": 10 / 52})
    assert one["class_shift"] is None and one["previous_class_shares"] == {}

    two = quality_values(ws, 2)
    assert two["labelled_share"] == 1.0
    assert two["coverage"] == pytest.approx((80 + 40) / 160)
    assert two["trusted_share"] == pytest.approx(1 / 3)
    assert two["sam_iou_mean"] == pytest.approx((0.9 + 0.5 + 0.25) / 3)
    assert two["previous_class_shares"] == pytest.approx(one["class_shares"])
    assert two["class_shares"] == pytest.approx({"class1": 80 / 130, "class2": 10 / 130,
                                                 "class5": 40 / 130})
    assert two["class_shift_class"] == "class5"
    assert two["class_shift"] == pytest.approx(40 / 130)  # class 5 had no pixels in round 1

    cfg = RunConfig(workspace=ws.root, quality=QualitySettings(
        min_labelled_images=0.9, min_coverage=0.3, min_trusted_share=0.3, min_sam_iou=0.5,
        max_class_shift=0.3))
    assert [(c.check, c.passed) for c in checks(cfg.quality, 1, one)] == [
        ("labelled_share", False), ("coverage", True), ("trusted_share", True),
        ("sam_iou_mean", True)]  # no class shift in round 1
    assert [c.check for c in checks(cfg.quality, 2, two) if not c.passed] == ["class_shift"]
    with pytest.raises(OvsegError, match=r"round 2 stopped by the quality gate before "
                       r"retraining: class_shift 0\.308 \(class class5\) > "
                       r"quality\.max_class_shift 0\.3\. Its pseudo-labels are committed"):
        check_round(TaskContext.open(cfg), 2)
    assert [r.status for r in ws.lineage(2) if r.stage == "quality_gate"] == ["failed"]
    ws.redo_round(2)  # a redo forgets the round's gate too
    assert [r.stage for r in ws.lineage(2)] == []
    assert not ws.is_round_committed(2)


def test_accept_round_on_the_command_line_adds_to_the_config(tmp_path):
    from flows.cli import build_parser
    from flows.commands.run import run_config

    config = tmp_path / "run.yaml"
    config.write_text("quality: {accept_rounds: [3], min_coverage: null}\n")
    args = build_parser().parse_args(["run", "--config", str(config), "--accept-round", "2",
                                      "--accept-round", "3", "--workspace", str(tmp_path)])
    cfg = run_config(args)
    assert cfg.quality.accept_rounds == [2, 3] and cfg.quality.min_coverage is None
    assert run_config(build_parser().parse_args(["run"])).quality.accept_rounds == []
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--accept-round", "two"])


def test_gate_settings_do_not_change_what_a_round_labels():
    from flows.labelling import plan_basis

    plain = RunConfig()
    gated = _with_quality(plain, min_trusted_share=0.9, accept_rounds=[1, 2])
    assert plan_basis(plain, "p" * 64) == plan_basis(gated, "p" * 64)
    assert not hasattr(plain.self_training, "min_trusted_share")
    assert np.isclose(plain.quality.min_labelled_images, 0.5)
