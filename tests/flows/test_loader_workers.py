"""A shard labelled with DataLoader workers decoding its images writes the same rows as one
labelled in-process, and both settings share shard keys (the workers change no row)."""

from __future__ import annotations

import shutil

from flows import labelling, steps
from flows.context import TaskContext
from tests.flows.conftest import pseudo_label_rows, small_config


def _label_round_one(cfg) -> list[dict]:
    ctx = TaskContext.open(cfg)
    plan = labelling.plan_round(ctx, 1)
    for shard in plan.shards:
        labelling.label_shard(ctx, shard, plan.parent)
    steps.commit_round(ctx.store, plan)
    return pseudo_label_rows(cfg.workspace), [s.key for s in plan.shards]


def test_loader_workers_change_no_row(stage_one_workspace, synthetic_root, tmp_path):
    results = []
    for workers in (0, 1):
        ws = tmp_path / f"workers={workers}"
        shutil.copytree(stage_one_workspace, ws)
        cfg = small_config(synthetic_root, ws)
        cfg.self_training.loader_workers = workers
        results.append(_label_round_one(cfg))
    (rows0, keys0), (rows1, keys1) = results
    assert len(rows0) > 0
    assert rows1 == rows0
    assert keys1 == keys0
