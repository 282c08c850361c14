"""A round interrupted after committing some shards, resumed after new images arrived, labels
the images it started with (no "inputs changed" error, nothing duplicated); the new images are
left for the next round, and the watcher still sees them."""

from __future__ import annotations

from storage.query import run_sql
from tests.flows.conftest import growing_target


def _round_images(ws, round: int) -> list[str]:
    return run_sql(str(ws), "SELECT image_id FROM images WHERE round = ? ORDER BY 1",
                   [round]).column("image_id").to_pylist()


def test_resumed_round_labels_what_it_started_with(prefect_api, synthetic_root,
                                                   stage_one_workspace, tmp_path):
    from flows import labelling
    from flows.context import TaskContext
    from flows.pipeline import self_training_round
    from flows.watch import target_change

    cfg, ws, first, later, add_later = growing_target(synthetic_root, stage_one_workspace,
                                                      tmp_path, shard_size=1)
    images = first + later

    # Round 1 starts: its plan is recorded and its first shard committed; then it dies.
    ctx = TaskContext.open(cfg)
    plan = labelling.plan_round(ctx, 1)
    assert [s.image_ids for s in plan.shards] == [(p.name,) for p in first]
    labelling.label_shard(ctx, plan.shards[0], plan.parent)
    add_later()  # new images arrive before the round is resumed

    record = self_training_round(cfg, 1)
    assert _round_images(ws, 1) == [p.name for p in first]
    shard_ids = run_sql(str(ws), "SELECT DISTINCT shard FROM images WHERE round = 1 ORDER BY 1"
                        ).column("shard").to_pylist()
    assert shard_ids == [0, 1, 2]
    assert record["row_counts"]["images"] == 3
    change = target_change(cfg)  # the round's lineage names the files it labelled
    assert change["changed"] and change["images"] == 6, change
    assert labelling.plan_round(ctx, 2).shards[-1].image_ids == (images[-1].name,)
