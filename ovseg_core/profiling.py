"""Wall-clock seconds per named phase of this process, for the round benchmark's time split.

`with phase("model"): ...` adds the block's duration to the phase once `enable()` was called
(the benchmark does; production runs never do), `phase_seconds()` reads them, `reset_phases()`
clears them. Disabled, a phase is an empty context: no clock read, no device synchronisation.
Enabled on a GPU, pending kernels are waited for at both ends so the time lands in the phase
that launched them (a stall a production pipeline must not pay).
"""

from __future__ import annotations

import time
from collections import Counter
from contextlib import contextmanager, nullcontext

import torch

_SECONDS: Counter[str] = Counter()
_ENABLED = False


def enable(on: bool = True) -> None:
    """Start (or stop) timing phases in this process."""
    global _ENABLED
    _ENABLED = on


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def phase(name: str):
    """A context accumulating the wall time of its block under `name` (seconds) when enabled."""
    return _timed(name) if _ENABLED else nullcontext()


@contextmanager
def _timed(name: str):
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
