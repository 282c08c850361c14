"""Work read ahead by DataLoader worker processes while the caller computes.

A round decodes each batch of target images (PIL) while the model and SAM run on the previous
one: `read_ahead(fn, items, workers)` yields fn(item) in order, computed by `workers` worker
processes up to `depth` items each ahead of the caller. Results cross processes by pickling
(numpy arrays, dicts, strings). workers = 0, or a daemonic process (a Dask worker, which may
not start processes), computes each item in the caller when it is asked for.

Workers start with `workers.forget_parent_atexits` (why: that module).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from torch.utils.data import DataLoader, Dataset

from ovseg_core.data.workers import forget_parent_atexits


class _Calls(Dataset):
    """fn(items[i]) as a map-style dataset."""

    def __init__(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> None:
        self.fn, self.items = fn, items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        return self.fn(self.items[index])


def _as_is(result: Any) -> Any:
    """The loader's collate: the result unchanged (no numpy -> tensor conversion)."""
    return result


def read_ahead(fn: Callable[[Any], Any], items: Sequence[Any], workers: int,
               depth: int = 2) -> Iterator[Any]:
    """fn(item) for each of `items`, in order; with workers > 0 computed ahead by worker
    processes (at most workers * depth results waiting)."""
    if workers == 0 or multiprocessing.current_process().daemon:
        return map(fn, items)
    loader = DataLoader(_Calls(fn, items), batch_size=None, shuffle=False, num_workers=workers,
                        prefetch_factor=depth, collate_fn=_as_is,
                        worker_init_fn=forget_parent_atexits)
    return iter(loader)
