"""The training loop: schedule, seeded data stream, resume == uninterrupted, checkpoint safety."""

import json

import numpy as np
import pytest
import torch

from ovseg_core.config import preset
from ovseg_core.data import open_dataset, write_synthetic_dataset
from ovseg_core.data.transforms import AugmentConfig
from ovseg_core.device import pick_runtime
from ovseg_core.errors import OvsegError
from ovseg_core.modeling.build import build_model
from ovseg_core.train import (
    STAGING,
    STATE_NAME,
    AugmentedStream,
    TrainConfig,
    lr_factor,
    read_train_log,
    train,
)

CPU = pick_runtime("cpu")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    out = write_synthetic_dataset(tmp_path_factory.mktemp("synth"), seed=0, image_size=64,
                                  num_train=6, num_val=2, num_target=2)
    return open_dataset("generic", out / "source", split="train")


def tiny_model(**overrides):
    torch.manual_seed(0)
    return build_model(preset("tiny", input_size=64, **overrides))


def small_cfg(**kw):
    base = dict(steps=4, batch_size=1, lr=1e-3, clip_lr_mult=1.0, warmup_steps=2, grad_clip=1.0,
                crop_size=64, seed=3, num_workers=0, log_every=1, checkpoint_every=2)
    return TrainConfig(**{**base, **kw})


def test_lr_schedule_warmup_then_cosine_to_zero():
    assert lr_factor(0, 4, 20) == pytest.approx(0.25)
    assert lr_factor(3, 4, 20) == pytest.approx(1.0)
    assert lr_factor(4, 4, 20) == pytest.approx(1.0)
    assert lr_factor(12, 4, 20) == pytest.approx(0.5)
    assert lr_factor(20, 4, 20) == pytest.approx(0.0)


def test_stream_is_a_pure_function_of_seed_and_sample_number(source):
    cfg = AugmentConfig(crop_size=48)
    a, b = AugmentedStream(source, cfg, seed=1), AugmentedStream(source, cfg, seed=1)
    for k in (0, 5, 13, 2):  # any order, fresh objects: same samples
        np.testing.assert_array_equal(a[k][0], b[k][0])
        np.testing.assert_array_equal(a[k][1], b[k][1])
    n = len(source)
    assert sorted(a.index_of(k) for k in range(n)) == list(range(n))          # epoch 0 covers all
    assert [a.index_of(k) for k in range(n)] != [a.index_of(k) for k in range(n, 2 * n)]
    image, label, index, geometry = a[0]
    assert image.shape == (3, 48, 48) and image.dtype == np.float32 and label.dtype == np.int64
    assert index == a.index_of(0) and geometry.shape == (5,)
    assert image.min() >= 0.0 and image.max() <= 1.0


def test_resume_from_mid_run_checkpoint_gives_same_final_weights(source, tmp_path):
    names = source.class_names
    seen = [True] * len(names)
    full = tiny_model()
    result = train(full, source, names, seen, small_cfg(), tmp_path / "full", CPU, progress=False)
    assert result.steps == 4 and result.start_step == 0 and np.isfinite(result.final_loss)

    class Interrupt(Exception):
        pass

    def stop_at_3(step, loss):
        if step == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(tiny_model(), source, names, seen, small_cfg(), tmp_path / "cut", CPU,
              progress=False, on_step=stop_at_3)
    state = torch.load(tmp_path / "cut" / STATE_NAME, weights_only=True)
    assert state["step"] == 2
    torch.manual_seed(123)  # a different global RNG state must not matter
    resumed_model = build_model(preset("tiny", input_size=64))
    resumed = train(resumed_model, source, names, seen, small_cfg(), tmp_path / "cut", CPU,
                    progress=False)
    assert resumed.start_step == 2 and resumed.steps == 4
    assert resumed.checkpoint_sha256 == result.checkpoint_sha256
    for (key, a), (_, b) in zip(full.state_dict().items(), resumed_model.state_dict().items(),
                                strict=True):
        assert torch.equal(a, b), key
    steps_logged = [r["step"] for r in read_train_log(tmp_path / "cut")]
    assert steps_logged == [1, 2, 3, 3, 4]  # step 3 ran twice: before the cut and after resuming


def test_finished_run_settings_check_and_interrupted_move(source, tmp_path):
    names = source.class_names
    seen = [True] * len(names)
    cfg = small_cfg(steps=2)
    model = tiny_model(dea_enabled=False)
    train(model, source, names, seen, cfg, tmp_path, CPU, progress=False)
    again = train(model, source, names, seen, cfg, tmp_path, CPU, progress=False)
    assert again.start_step == 2 and again.final_loss is None
    with pytest.raises(OvsegError, match="different train config"):
        train(model, source, names, seen, small_cfg(steps=2, lr=5e-4), tmp_path, CPU,
              progress=False)
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and len(log[0]["lr"]) == 2
    # A crash after the weights were moved into place but before the trainer state was:
    staging = tmp_path / STAGING
    staging.mkdir()
    (tmp_path / STATE_NAME).rename(staging / STATE_NAME)
    result = train(model, source, names, seen, cfg, tmp_path, CPU, progress=False)
    assert result.start_step == 2 and not staging.exists()
    # Weights that do not match the trainer state are refused:
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(OvsegError, match="inconsistent"):
        train(model, source, names, seen, cfg, tmp_path, CPU, progress=False)


def test_loader_workers_exit_cleanly_despite_the_parents_thread_atexit_hooks(source):
    """Prefect's services register thread at-exit hooks that fail in a forked child; a training
    loader worker that ran them exited with code 1 (a traceback after every training run)."""
    import os
    import threading

    from ovseg_core.train import _loader

    parent = os.getpid()

    def fails_in_a_child() -> None:
        if os.getpid() != parent:
            raise AssertionError("a parent thread's at-exit hook ran in a forked worker")

    threading._register_atexit(fails_in_a_child)
    batches = list(_loader(source, small_cfg(steps=3, num_workers=1), start_step=0))
    assert len(batches) == 3  # run to its end: the worker was shut down and exited with 0


@pytest.mark.parametrize("sam_crops", ["warped", "encoded"])
def test_dea_gets_sam_features_of_each_crop(source, tmp_path, sam_crops):
    """"encoded": DEA's SAM input is the frozen SAM's encoding of the augmented crop itself;
    "warped": the source image's features warped to the crop (same shape, not the same
    values)."""
    model = tiny_model()
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    crops: list[torch.Tensor] = []
    model.register_forward_pre_hook(lambda m, args: crops.append(args[0].detach().clone()))
    model.dea.register_forward_pre_hook(lambda m, args: seen.append(args[1].detach().clone()))
    train(model, source, source.class_names, [True] * len(source.class_names),
          small_cfg(steps=1, scale_range=(1.5, 1.5), sam_crops=sam_crops), tmp_path / "out",
          CPU, progress=False)
    (dea_input,) = seen
    with torch.no_grad():
        own = model.sam_features(crops[0])
    assert dea_input.shape == own.shape
    assert torch.allclose(dea_input, own, atol=1e-5) == (sam_crops == "encoded")


def test_unknown_sam_crops_refused():
    with pytest.raises(OvsegError, match="sam_crops"):
        small_cfg(sam_crops="cached").validate()


def test_a_state_written_before_sam_crops_existed_still_resumes(source, tmp_path):
    """A trainer state without `sam_crops` was written by a run that warped SAM's features:
    it resumes under the default and is refused under "encoded"."""
    names, out = source.class_names, tmp_path / "cut"

    def stop_at_3(step, loss):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(), source, names, [True] * len(names), small_cfg(), out, CPU,
              progress=False, on_step=stop_at_3)
    state = torch.load(out / STATE_NAME, weights_only=True)
    del state["train_config"]["sam_crops"]
    torch.save(state, out / STATE_NAME)
    with pytest.raises(OvsegError, match="different train config"):
        train(tiny_model(), source, names, [True] * len(names), small_cfg(sam_crops="encoded"),
              out, CPU, progress=False)
    resumed = train(tiny_model(), source, names, [True] * len(names), small_cfg(), out, CPU,
                    progress=False)
    assert resumed.start_step == 2 and resumed.steps == 4
