"""Wall-clock seconds per named phase of this process, for the round benchmark's time split.

`with phase("model"): ...` adds the block's duration to the phase; `phase_seconds()` reads
them, `reset_phases()` clears them. On a GPU, pending kernels are waited for at both ends so
the time lands in the phase that launched them. Costs two clock reads per block.
"""

from __future__ import annotations

import time
from collections import Counter
from contextlib import contextmanager

import torch

_SECONDS: Counter[str] = Counter()


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


@contextmanager
def phase(name: str):
    """Accumulate the wall time of the `with` block under `name` (seconds)."""
    _sync()
    start = time.perf_counter()
    try:
        yield
    finally:
        _sync()
        _SECONDS[name] += time.perf_counter() - start


def phase_seconds() -> dict[str, float]:
    return dict(_SECONDS)


def reset_phases() -> None:
    _SECONDS.clear()
