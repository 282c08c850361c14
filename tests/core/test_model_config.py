"""Model config: presets, JSON round trip, refusal of unknown keys."""

import json

import pytest

from ovseg_core.config import ModelConfig, preset
from ovseg_core.errors import OvsegError


@pytest.mark.parametrize("name", ["paper", "mobile", "tiny"])
def test_presets_round_trip_through_json(name):
    config = preset(name, decoder={"top_k": 4})
    again = ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert isinstance(again.decoder.dims, tuple)


def test_preset_contents():
    paper = preset("paper")
    assert (paper.clip.model_name, paper.sam.variant, paper.input_size) == (
        "convnext_base_w_320", "vit_b", 768)
    assert preset("mobile").sam.variant == "vit_t"
    tiny = preset("tiny")
    assert (tiny.sam.variant, tiny.sam.image_size, tiny.input_size) == ("vit_t", 256, 128)
    with pytest.raises(OvsegError, match="only vit_t"):
        preset("paper", sam={"image_size": 512})
    with pytest.raises(OvsegError, match="multiple of 16"):
        preset("tiny", sam={"image_size": 250})


def test_unknown_keys_and_bad_values_refused():
    with pytest.raises(OvsegError, match="nonsense"):
        preset("tiny", nonsense=1)
    with pytest.raises(OvsegError, match=r"decoder\.width"):
        ModelConfig.from_dict({"decoder": {"width": 3}})
    with pytest.raises(OvsegError, match="unknown model preset"):
        preset("huge")
    with pytest.raises(OvsegError, match="multiple of 32"):
        preset("tiny", input_size=100)
