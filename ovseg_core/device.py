"""Device and dtype, decided once at the entry point (nanoGPT style)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from ovseg_core.errors import OvsegError


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
    dtype. OvsegError for a name torch does not know or a CUDA device this machine lacks."""
    name = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise OvsegError(f"device {name!r} is not a torch device (cpu, cuda, cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OvsegError(f"device {name}: this machine has no usable CUDA device (torch "
                         f"{torch.__version__}); set --device cpu or leave the device unset")
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        raise OvsegError(f"device {name}: only {torch.cuda.device_count()} CUDA device(s) "
                         "visible")
    dtype = torch.bfloat16 if dev.type == "cuda" else None
    return Runtime(device=dev, autocast_dtype=dtype)
