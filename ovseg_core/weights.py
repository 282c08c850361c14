"""Weight files: one reader per file format and one strict loader with one key report.

Every weight file ovseg reads goes through here: its own checkpoints (`model.safetensors`),
SAM's `.pth`/`.pt` state dicts, open_clip checkpoints (`.safetensors` or `.pt`/`.bin`) and the
trainer's resume weights. Reading never unpickles objects (safetensors, or `torch.load` with
`weights_only=True`), always lands on the CPU, and a file that is missing, unreadable or does
not fit the module is an `OvsegError` that names the file, what it was meant to be and, where
a config key names the file, that key.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from ovseg_core.errors import OvsegError

WRAPPERS = ("state_dict", "model")
"""Keys under which training scripts nest the weights ({'model': {...}, 'optimizer': ...})."""


def read_state(path: str | Path, what: str, hint: str = "") -> dict[str, Tensor]:
    """The tensors of a weight file, by extension: `.safetensors` through safetensors, anything
    else through `torch.load(weights_only=True)`. Nested dicts under `WRAPPERS` are unwrapped and
    DDP's `module.` prefixes removed.

    what: what the file is for, in errors ("SAM checkpoint"); hint: what to do when it is missing
    (e.g. "set model.sam_checkpoint").
    """
    path = Path(path)
    if not path.is_file():
        raise OvsegError(f"{what} not found: {path}." + (f" {hint}" if hint else ""))
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle of objects, a truncated file, another format
        raise OvsegError(f"cannot read {what} {path}: not a weights file ({_first_line(exc)})"
                         ) from None
    for key in WRAPPERS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise OvsegError(f"cannot read {what} {path}: it holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_strict(module: nn.Module, state: dict[str, Tensor], what: str) -> None:
    """Load `state` into `module`: every key present, none extra, every shape equal; otherwise
    an OvsegError listing the missing, unexpected and mis-shaped keys (the one key report)."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shaped = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or shaped:
        parts = [f"{label} {_names(keys)}" for label, keys in
                 (("missing keys", missing), ("unexpected keys", unexpected),
                  ("wrong shapes for", shaped)) if keys]
        raise OvsegError(f"{what} does not fit this model: " + "; ".join(parts))
    module.load_state_dict(state, strict=True)


def load_file_into(module: nn.Module, path: str | Path, what: str, hint: str = "") -> None:
    """`read_state` then `load_strict`: the whole path from a file to loaded weights."""
    load_strict(module, read_state(path, what, hint), f"{what} {path}")


def _names(keys: list[str], limit: int = 8) -> str:
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return "[" + ", ".join(keys[:limit]) + more + "]"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
