"""A round's retraining over 2 gloo CPU processes (`train.processes: 2`, started by torch's
elastic launcher) stores the checkpoint of a single-process retraining, within the tolerance
measured for `ovseg train` under torchrun (tests/core/test_train_ddp.py); a worker that dies is
a clear error, nothing is committed, and the next run resumes and finishes the round."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flows import labelling, steps
from flows.context import TaskContext
from ovseg_core.errors import OvsegError
from ovseg_core.train import read_train_log
from storage.workspace import Workspace
from tests.core.test_train_ddp import ABS_TOL, REL_TOL, weight_diffs
from tests.flows.conftest import small_config


@pytest.fixture(scope="module")
def labelled_round(synthetic_root, tmp_path_factory) -> Path:
    """A workspace with stage one done and round 1's pseudo-labels committed (plain steps);
    copy it, don't write to it."""
    ws = tmp_path_factory.mktemp("processes") / "ws"
    ctx = TaskContext.open(small_config(synthetic_root, ws, rounds=1))
    steps.run_stage_one(ctx)
    plan = labelling.plan_round(ctx, 1)
    for shard in plan.shards:
        labelling.label_shard(ctx, shard, plan.parent)
    steps.commit_round(ctx.store, plan)
    return ws


def retrained(synthetic_root: Path, labelled_round: Path, ws: Path, processes: int):
    """(context, parent, retrain's result) of round 1 on a copy of the labelled round."""
    shutil.copytree(labelled_round, ws)
    cfg = small_config(synthetic_root, ws, rounds=1)
    cfg.train.processes = processes
    ctx = TaskContext.open(cfg)
    parent = steps.parent_ref(ctx.store, 1)
    return ctx, parent, steps.retrain(ctx, 1, parent)


def train_dir(ctx) -> Path:
    return ctx.round_dir(1, "train")


@pytest.fixture(scope="module")
def single(synthetic_root, labelled_round, tmp_path_factory):
    """Round 1 retrained in this process (train.processes: 1, today's path)."""
    return retrained(synthetic_root, labelled_round, tmp_path_factory.mktemp("one") / "ws", 1)


def test_two_gloo_processes_store_the_single_process_checkpoint(synthetic_root, labelled_round,
                                                                single, tmp_path):
    ctx1, parent, ckpt1 = single
    ctx2, _, ckpt2 = retrained(synthetic_root, labelled_round, tmp_path / "ws", 2)
    init = ctx1.checkpoint_dir(0, parent.checkpoint_sha256)
    rel, biggest = weight_diffs(train_dir(ctx2), train_dir(ctx1), init)
    print(f"round retraining, 2 processes vs 1: relative update difference {rel:.2g}, "
          f"max |dw| {biggest:.2g}")
    assert rel <= REL_TOL and biggest <= ABS_TOL
    assert ckpt1.sha256 != ckpt2.sha256  # two real runs, not one result read twice

    # rank 0 alone wrote the folder the parent committed: the same files and log as one process
    assert sorted(p.name for p in train_dir(ctx2).iterdir()) == sorted(
        p.name for p in train_dir(ctx1).iterdir())
    assert [r["step"] for r in read_train_log(train_dir(ctx2))] == [
        r["step"] for r in read_train_log(train_dir(ctx1))]
    assert ctx2.store.checkpoint(1).sha256 == ckpt2.sha256

    # lineage as with one process: finish_round measures the committed checkpoint
    record = steps.finish_round(ctx2, parent, ckpt2, "2026-01-01T00:00:00Z")
    assert record.checkpoint_sha256 == ckpt2.sha256 and record.parent_round == 0
    assert steps.retrain(ctx2, 1, parent) == ckpt2  # done: a re-run reads it back


@pytest.mark.slow
def test_a_killed_worker_fails_the_round_and_a_rerun_resumes(synthetic_root, labelled_round,
                                                             single, tmp_path, monkeypatch):
    ctx1, parent, _ = single
    ws = tmp_path / "ws"
    monkeypatch.setenv("OVSEG_KILL_AT", "train_step:1:2")  # both workers SIGKILL at step 2
    killed = r"over 2 processes failed[\s\S]*rank \d: killed by SIGKILL"
    with pytest.raises(OvsegError, match=killed):
        retrained(synthetic_root, labelled_round, ws, 2)
    cfg = small_config(synthetic_root, ws, rounds=1)
    assert Workspace(str(ws)).checkpoint(1) is None  # nothing committed

    monkeypatch.delenv("OVSEG_KILL_AT")
    cfg.train.processes = 2
    ctx = TaskContext.open(cfg)
    ckpt = steps.retrain(ctx, 1, parent)
    assert Workspace(str(ws)).checkpoint(1).sha256 == ckpt.sha256
    init = ctx1.checkpoint_dir(0, parent.checkpoint_sha256)
    rel, biggest = weight_diffs(train_dir(ctx), train_dir(ctx1), init)
    assert rel <= REL_TOL and biggest <= ABS_TOL
