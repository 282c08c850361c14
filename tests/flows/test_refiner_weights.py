"""The SAM that refines pseudo-labels holds real weights: compared tensor by tensor with the
file."""

import pytest
import torch

from flows.config import RunConfig
from flows.context import TaskContext
from flows.labelling import build_refiner, refiner_for
from flows.steps import model_config
from ovseg_core.errors import OvsegError
from ovseg_core.modeling.build import build_model
from ovseg_core.modeling.sam_encoder import build_sam, default_sam_checkpoint


def test_default_job_refiner_holds_the_shipped_mobile_sam_weights():
    cfg = RunConfig.model_validate({"model": {"pretrain_clip": False}})  # else: the default job
    model = build_model(model_config(cfg), seed=0)
    refiner, tag = refiner_for(TaskContext.open(cfg), model)
    assert tag is not None and tag.startswith("vit_t:")
    shipped = torch.load(default_sam_checkpoint("vit_t"), map_location="cpu", weights_only=True)
    parts = refiner.parts
    loaded = {f"{name}.{key}": value
              for name, module in (("image_encoder", parts.image_encoder),
                                   ("prompt_encoder", parts.prompt_encoder),
                                   ("mask_decoder", parts.mask_decoder))
              for key, value in module.state_dict().items()}
    assert set(loaded) == set(shipped)
    differing = [k for k in shipped if not torch.equal(loaded[k].cpu(), shipped[k])]
    assert differing == []
    random = build_sam("vit_t", random_init=True)
    assert not torch.equal(random.mask_decoder.iou_token.weight,
                           shipped["mask_decoder.iou_token.weight"])


def test_a_real_refiner_without_its_weights_is_an_error_naming_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("OVSEG_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(OvsegError, match="self_training.refiner_checkpoint"):
        build_refiner("vit_b", None, "cpu", "ignore", None)
    with pytest.raises(OvsegError, match="model.sam_checkpoint"):
        build_model(model_config(RunConfig.model_validate({"model": {"preset": "paper"}})))


@pytest.mark.parametrize("refiner_sam", ["vit_t", "model"])
def test_prompts_per_pass_reaches_the_refiner_but_not_the_rounds_key(refiner_sam):
    """`self_training.prompts_per_pass` sets the refiner's decoder passes; the rows do not depend
    on it (tests/core/test_selftrain_refiner.py compares passes of 1, 2 and 64), so a round
    planned without it resumes with it."""
    from flows.labelling import plan_basis

    settings = {"model": {"pretrain_clip": False}, "self_training": {"refiner_sam": refiner_sam}}
    plain = RunConfig.model_validate(settings)
    settings["self_training"]["prompts_per_pass"] = 5
    tuned = RunConfig.model_validate(settings)
    model = build_model(model_config(tuned), seed=0)
    assert refiner_for(TaskContext.open(tuned), model)[0].settings.max_prompts == 5
    assert refiner_for(TaskContext.open(plain), model)[0].settings.max_prompts is None
    assert plan_basis(plain, "p" * 64) == plan_basis(tuned, "p" * 64)
    with pytest.raises(ValueError):
        RunConfig.model_validate({"self_training": {"prompts_per_pass": 0}})
