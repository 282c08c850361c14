"""Device and dtype, decided once at the entry point (nanoGPT style)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Runtime:
    """Where and how to run: `device`, and the autocast dtype (bf16 on GPU, none on CPU)."""

    device: torch.device
    autocast_dtype: torch.dtype | None

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast context for forward passes; a no-op on CPU (bf16 is slower there)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)


def pick_runtime(device: str | None = None) -> Runtime:
    """Choose the device ("cuda", "cpu", "cuda:1"; default: CUDA when present) and autocast
    dtype."""
    name = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    dtype = torch.bfloat16 if dev.type == "cuda" else None
    return Runtime(device=dev, autocast_dtype=dtype)
