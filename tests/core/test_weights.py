"""ovseg_core.weights: every weight file is read one way per format and loaded with one report."""

import pickle

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from ovseg_core.errors import OvsegError
from ovseg_core.weights import load_file_into, read_state


def small() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))


@pytest.mark.parametrize("name", ["w.safetensors", "w.pth"])
def test_both_formats_load_the_same_tensors(tmp_path, name):
    source, target = small(), small()
    state = {k: v.clone() for k, v in source.state_dict().items()}
    path = tmp_path / name
    save_file(state, str(path)) if name.endswith("safetensors") else torch.save(state, path)
    load_file_into(target, path, "test weights")
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(),
                                                  target.state_dict().values(), strict=True))


def test_training_wrappers_and_ddp_prefixes_are_removed(tmp_path):
    source, target = small(), small()
    wrapped = {"model": {f"module.{k}": v for k, v in source.state_dict().items()}, "step": 3}
    torch.save(wrapped, tmp_path / "w.pt")
    load_file_into(target, tmp_path / "w.pt", "test weights")
    assert torch.equal(target[1].bias, source[1].bias)


def test_one_report_names_missing_unexpected_and_misshaped_keys(tmp_path):
    state = dict(small().state_dict())
    del state["0.bias"]
    state["extra"] = torch.zeros(1)
    state["1.weight"] = torch.zeros(5, 5)
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(OvsegError) as err:
        load_file_into(small(), tmp_path / "w.pt", "test weights")
    text = str(err.value)
    assert "missing keys [0.bias]" in text and "unexpected keys [extra]" in text
    assert "wrong shapes for [1.weight]" in text and str(tmp_path / "w.pt") in text


def test_pickled_objects_and_missing_files_are_refused_with_the_hint(tmp_path):
    (tmp_path / "w.pt").write_bytes(pickle.dumps({"a": object()}))
    with pytest.raises(OvsegError, match="not a weights file"):
        read_state(tmp_path / "w.pt", "test weights")
    (tmp_path / "w.safetensors").write_bytes(b"not really")
    with pytest.raises(OvsegError, match="not a weights file"):
        read_state(tmp_path / "w.safetensors", "test weights")
    with pytest.raises(OvsegError, match="set x.y"):
        read_state(tmp_path / "absent.pt", "test weights", hint="set x.y")
