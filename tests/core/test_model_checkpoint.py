"""Checkpoints: bit-exact round trip, strict keys, missing files."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from ovseg_core.checkpoint import file_sha256, load_model, save_model
from ovseg_core.config import preset
from ovseg_core.errors import OvsegError
from ovseg_core.modeling.build import build_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(3)
    model = build_model(preset("tiny", decoder={"top_k": 3})).eval()
    folder = tmp_path_factory.mktemp("ckpt") / "round=000"
    weights = save_model(model, folder)
    return model, folder, weights


def test_round_trip_is_bit_exact(saved):
    model, folder, weights = saved
    loaded = load_model(folder)
    assert loaded.config == model.config
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    images, names = torch.rand(1, 3, 64, 64), ["cat", "dog", "sky", "road"]
    with torch.no_grad():
        out_a = model(images, model.encode_vocabulary(names)).logits
        out_b = loaded(images, loaded.encode_vocabulary(names)).logits
    assert torch.equal(out_a, out_b)
    assert file_sha256(weights) == file_sha256(save_model(loaded, folder.parent / "again"))
    assert json.loads((folder / "config.json").read_text())["decoder"]["top_k"] == 3


def test_missing_and_extra_keys_are_named(saved, tmp_path):
    _, folder, weights = saved
    state = load_file(str(weights))
    cfg = (folder / "config.json").read_text()

    missing = tmp_path / "missing"
    missing.mkdir()
    (missing / "config.json").write_text(cfg)
    key = "decoder.embed.weight"
    save_file({k: v for k, v in state.items() if k != key}, str(missing / "model.safetensors"))
    with pytest.raises(OvsegError, match=r"missing keys \[decoder\.embed\.weight\]"):
        load_model(missing)

    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "config.json").write_text(cfg)
    save_file(dict(state, **{"decoder.surplus": torch.zeros(2)}), str(extra / "model.safetensors"))
    with pytest.raises(OvsegError, match=r"unexpected keys \[decoder\.surplus\]"):
        load_model(extra)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(OvsegError, match="model.safetensors is missing"):
        load_model(tmp_path)


def test_missing_sam_weights_named_before_building(tmp_path, monkeypatch):
    monkeypatch.setenv("OVSEG_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(OvsegError, match=r"sam_vit_b_01ec64\.pth.*sam_checkpoint"):
        build_model(preset("paper"))
    with pytest.raises(OvsegError, match=r"nope\.bin.*clip\.pretrained"):
        build_model(preset("tiny", clip={"pretrained": str(tmp_path / "nope.bin")}))


def test_a_pickle_under_the_weights_name_is_a_clear_error(tmp_path):
    import pickle

    import pytest

    from ovseg_core.checkpoint import WEIGHTS_FILE, load_model, save_model
    from ovseg_core.config import preset
    from ovseg_core.errors import OvsegError
    from ovseg_core.modeling.build import build_model

    save_model(build_model(preset("tiny", dea_enabled=False), seed=0), tmp_path)
    (tmp_path / WEIGHTS_FILE).write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(OvsegError, match="not a weights file"):
        load_model(tmp_path)
