"""CLIP's check of the pseudo-labels' classes in a real round: on by default when the model's
CLIP has weights, stored per row, and the rows it rejects paint nothing."""

import pytest

from flows.config import RunConfig
from flows.context import TaskContext
from flows.labelling import verifier_for
from flows.steps import model_config
from ovseg_core import clip_pretrain as cp
from ovseg_core.errors import OvsegError
from ovseg_core.modeling.build import build_model
from tests.flows.conftest import pseudo_label_rows, small_config


def test_off_for_a_random_clip_unless_asked_and_then_an_error():
    cfg = RunConfig.model_validate({"model": {"pretrain_clip": False}})
    model = build_model(model_config(cfg), seed=0)
    assert model.config.clip.pretrained is None
    assert verifier_for(TaskContext.open(cfg), model, ["a", "b"]) is None
    asked = cfg.model_copy(update={"self_training": cfg.self_training.model_copy(
        update={"clip_verify": True})})
    with pytest.raises(OvsegError, match="clip_verify"):
        verifier_for(TaskContext.open(asked), model, ["a", "b"])


def test_a_round_stores_clips_class_of_every_gated_row_and_rejected_rows_paint_nothing(
        prefect_api, synthetic_root, tmp_path):
    from flows.pipeline import self_training
    from flows.plan import data_plan
    from storage.rle import decode_masks

    clip_file = tmp_path / "clip.pt"
    cp.save_open_clip(cp.new_tiny_clip(3), clip_file)
    cfg = small_config(synthetic_root, tmp_path / "ws", rounds=1)
    cfg = cfg.model_copy(update={  # a random CLIP rejects most rows: the gate would stop it
        "model": cfg.model.model_copy(update={"clip_weights": str(clip_file)}),
        "quality": cfg.quality.model_copy(update={"min_coverage": None})})
    _, round_one = self_training(cfg)
    rows = [r for r in pseudo_label_rows(cfg.workspace) if r["round"] == 1]
    gated = [r for r in rows if r["gated"]]
    assert gated and all(r["clip_class_id"] is not None for r in gated)
    assert all(r["clip_class_id"] is None for r in rows if not r["gated"])
    rejected = [r for r in gated if r["clip_class_id"] != r["class_id"]]
    assert rejected and all(r["paints"] == "none" for r in rejected)
    assert any(r["paints"] != "none" for r in gated)  # the ones CLIP agrees with still paint
    assert round_one["row_counts"]["clip_rejected"] == len(rejected)
    # the stored class is what the weights file's CLIP says of the stored mask
    plan = data_plan(cfg)
    model = build_model(model_config(cfg), seed=0)
    verifier = verifier_for(TaskContext.open(cfg), model, plan.target_classes)
    for r in gated[:6]:
        rle = r["refined_rle"] if r["accepted"] and r["refined_area"] else r["coarse_rle"]
        mask = decode_masks([rle], r["image_height"], r["image_width"])[0]
        image = plan.read_target(r["image_id"])
        assert verifier.classify([(image, mask)]).tolist() == [r["clip_class_id"]]
    # the pseudo-label quality measures the map retraining uses: rejected rows are not in it
    from flows.quality import round_quality
    from storage.workspace import Workspace

    ws = Workspace(str(cfg.workspace))
    used, every = round_quality(ws, 1, plan), round_quality(ws, 1, plan, "gated")
    assert round_one["metrics"]["pl_refined_coverage"] == pytest.approx(used["pl_refined_coverage"])
    assert used["pl_refined_coverage"] < every["pl_refined_coverage"]
