"""Images added to the target after a round are labelled by the next one, and the watcher sees
them: the target's manifest hash against the last completed round's lineage."""

from __future__ import annotations

import base64
import io
import logging
import re

from PIL import Image

from storage.query import run_sql
from tests.flows.conftest import growing_target


def test_next_round_labels_images_added_after_the_last(prefect_api, synthetic_root,
                                                        stage_one_workspace, tmp_path, caplog):
    from flows import labelling
    from flows.context import TaskContext
    from flows.pipeline import self_training_round
    from flows.plan import data_plan
    from flows.watch import target_change
    from storage.workspace import Workspace

    cfg, ws, first, later, add_later = growing_target(synthetic_root, stage_one_workspace,
                                                      tmp_path)
    images = first + later
    # Stage one saw the other target folder: the watcher reports a change before round 1.
    assert target_change(cfg)["changed"]

    caplog.set_level(logging.INFO, logger="prefect")
    record = self_training_round(cfg, 1)
    assert target_change(cfg) | {"reason": ""} == {"changed": False, "round": 1, "images": 3,
                                                   "reason": ""}
    add_later()  # new files arrive in the same process (the plan is cached per process)

    # Round 2's labelling (the round's steps, without retraining, to keep the test short).
    ctx = TaskContext.open(cfg)
    plan = labelling.plan_round(ctx, 2)
    for shard in plan.shards:
        labelling.label_shard(ctx, shard, plan.parent)
    labelled = {r: run_sql(str(ws), "SELECT image_id FROM images WHERE round = ? ORDER BY 1",
                           [r]).column("image_id").to_pylist() for r in (1, 2)}
    assert labelled == {1: [p.name for p in first], 2: [p.name for p in images]}
    assert run_sql(str(ws), "SELECT count(DISTINCT image_id) AS n FROM pseudo_labels WHERE "
                   "round = 2").column("n")[0].as_py() == 6  # every region gated (gate 0)
    assert record["dataset_manifest_hash"] != data_plan(cfg).target_manifest_hash()
    change = target_change(cfg)  # until round 2 completes
    assert change["changed"] and change["images"] == 6, change

    # Round 1's report artifact shows its pictures (inline) and says where the report lives.
    from prefect.artifacts import Artifact

    artifact = Artifact.get("ovseg-report-round-1")
    index = f"{Workspace(str(ws)).reports_dir(1)}/index.md"
    assert f"`{index}`" in artifact.data
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]*)\)", artifact.data)
    assert len(pictures) == 2 + cfg.self_training.report_images  # mIoU, classes, samples
    assert all(p.startswith(("data:image/png;base64,", "data:image/jpeg;base64,"))
               for p in pictures)
    decoded = Image.open(io.BytesIO(base64.b64decode(pictures[-1].split(",", 1)[1])))
    assert decoded.width > 0 and decoded.width <= 800

    # Round 1's task logs say what happened, per shard and per retraining.
    said = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("round 1: 3 target images in 1 shard(s), from round 0's checkpoint ")
               for m in said), said
    assert any(m.startswith("round 1 shard 0: 3 images (0 unreadable), ") and
               m.endswith(" rows written") for m in said), said
    assert any(m.startswith("round 1 retrained from round 0: step 3, loss ") for m in said), said
