"""Dense open_clip encoder: shapes, head + projection per position, local weight loading."""

import pytest
import torch
from safetensors.torch import save_file

from ovseg_core.config import ClipConfig
from ovseg_core.errors import OvsegError
from ovseg_core.modeling.clip_encoder import build_open_clip, clip_parts


def test_dense_features_are_the_pooled_head_per_position():
    torch.manual_seed(0)
    clip = build_open_clip(ClipConfig(model_name="ovseg-tiny")).eval()
    visual, _ = clip_parts(build_open_clip(ClipConfig(model_name="ovseg-tiny")))
    visual.load_state_dict({"trunk." + k: v for k, v in clip.visual.trunk.state_dict().items()}
                           | {"proj.weight": clip.visual.head.proj.weight})
    visual.eval()
    img = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        dense, skips = visual(img)
        # a 1x1 map: CLIP's own pooled image embedding equals the dense embedding
        small = torch.nn.functional.interpolate(img, size=(32, 32))
        pooled = clip.encode_image((small - visual.mean) / visual.std)
        dense_small, _ = visual(small)
    assert dense.shape == (2, 64, 4, 4)
    assert [s.shape[1:] for s in skips] == [(40, 32, 32), (80, 16, 16), (160, 8, 8)]
    assert torch.allclose(dense_small.flatten(1), pooled, atol=1e-5)


def test_local_open_clip_checkpoint_loads_strictly(tmp_path):
    torch.manual_seed(1)
    source = build_open_clip(ClipConfig(model_name="ovseg-tiny"))
    path = tmp_path / "open_clip_tiny.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    torch.manual_seed(2)
    loaded = build_open_clip(ClipConfig(model_name="ovseg-tiny", pretrained=str(path)))
    key = "visual.trunk.stem.0.weight"
    assert torch.equal(loaded.state_dict()[key], source.state_dict()[key])

    state = source.state_dict()
    del state["ln_final.weight"]
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "broken.safetensors"))
    with pytest.raises(OvsegError, match="ln_final.weight"):
        build_open_clip(ClipConfig(model_name="ovseg-tiny",
                                   pretrained=str(tmp_path / "broken.safetensors")))


def test_unknown_model_name():
    with pytest.raises(OvsegError, match="unknown open_clip model"):
        build_open_clip(ClipConfig(model_name="no-such-model"))
