"""read_ahead: DataLoader workers compute the same results, in order, as the caller would."""

from __future__ import annotations

import os
import threading

import numpy as np

from ovseg_core.data.prefetch import read_ahead


def _decode(n: int) -> tuple[np.ndarray, int]:
    return np.full((2, 3), n, dtype=np.uint8), os.getpid()


def test_workers_return_what_the_caller_would_in_order():
    items = list(range(7))
    ahead = list(read_ahead(_decode, items, workers=2))
    assert [int(a[0, 0]) for a, _ in ahead] == items
    assert all(isinstance(a, np.ndarray) and a.dtype == np.uint8 for a, _ in ahead)
    assert {pid for _, pid in ahead} != {os.getpid()}  # computed elsewhere
    inline = list(read_ahead(_decode, items, workers=0))
    assert {pid for _, pid in inline} == {os.getpid()}
    for (a, _), (b, _) in zip(ahead, inline, strict=True):
        np.testing.assert_array_equal(a, b)


def test_workers_exit_cleanly_despite_the_parents_thread_atexit_hooks():
    """Prefect's services register thread at-exit hooks that fail in a forked child (no service
    thread there); a worker that ran them exited with code 1 and the loader raised."""
    parent = os.getpid()

    def fails_in_a_child() -> None:
        if os.getpid() != parent:
            raise AssertionError("a parent thread's at-exit hook ran in a forked worker")

    threading._register_atexit(fails_in_a_child)
    ahead = read_ahead(_decode, list(range(3)), workers=1)
    assert [int(a[0, 0]) for a, _ in ahead] == [0, 1, 2]  # exhausted: the workers shut down
