"""read_ahead: DataLoader workers compute the same results, in order, as the caller would."""

from __future__ import annotations

import os

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
