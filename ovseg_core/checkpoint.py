"""Model checkpoints: `model.safetensors` (every weight and persistent buffer, frozen SAM and
text tower included, so a checkpoint needs no other file) + `config.json` (the ModelConfig)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from ovseg_core.config import ModelConfig
from ovseg_core.errors import OvsegError
from ovseg_core.modeling.build import build_skeleton
from ovseg_core.modeling.model import STSeg
from ovseg_core.weights import load_file_into

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT = "ovseg-stseg-1"


def save_model(model: STSeg, directory: str | Path) -> Path:
    """Write the weights and config into `directory` (created); returns the weights file."""
    from safetensors.torch import save_file

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    weights = folder / WEIGHTS_FILE
    save_file(state, str(weights), metadata={"format": FORMAT})
    (folder / CONFIG_FILE).write_text(json.dumps(model.config.to_dict(), indent=2) + "\n")
    return weights


def load_model(directory: str | Path, map_location: str | torch.device = "cpu") -> STSeg:
    """Rebuild the model from `config.json`, load weights on the CPU with a strict key check
    (`ovseg_core.weights`: OvsegError naming missing / unexpected keys), then move it to
    `map_location`."""
    folder = Path(directory)
    weights, config_file = folder / WEIGHTS_FILE, folder / CONFIG_FILE
    for path in (weights, config_file):
        if not path.is_file():
            raise OvsegError(f"not a model checkpoint: {path} is missing")
    config = ModelConfig.from_dict(json.loads(config_file.read_text()))
    model = build_skeleton(config)
    load_file_into(model, weights, "model checkpoint")
    return model.to(map_location)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
