"""A shard labelled with DataLoader workers decoding its images writes the same rows as one
labelled in-process, and both settings share shard keys (the workers change no row)."""

from __future__ import annotations

import shutil

from flows import labelling, steps
from tests.flows.conftest import pseudo_label_rows, small_config


def _label_round_one(cfg) -> list[dict]:
    parent = steps.parent_record(cfg, 1).to_dict()
    shards = labelling.shard_plan(cfg, 1, parent["checkpoint_sha256"])
    for shard in shards:
        labelling.label_shard(cfg, 1, shard, parent)
    steps.commit_round(cfg, 1, len(shards))
    return pseudo_label_rows(cfg.workspace), [s["key"] for s in shards]


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
