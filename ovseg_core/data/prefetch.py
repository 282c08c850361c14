"""Work read ahead by DataLoader worker processes while the caller computes.

A round decodes each batch of target images (PIL) while the model and SAM run on the previous
one: `read_ahead(fn, items, workers)` yields fn(item) in order, computed by `workers` worker
processes up to `depth` items each ahead of the caller. Results cross processes by pickling
(numpy arrays, dicts, strings). workers = 0, or a daemonic process (a Dask worker, which may
not start processes), computes each item in the caller when it is asked for.

Workers are forked. A forked worker inherits the at-exit hooks the parent's threads registered
(`threading._register_atexit`): Prefect's log and event services register one that drains
their queue through a thread the child does not have, so it failed at the worker's exit, the
worker exited with code 1 and torch reported "DataLoader worker exited unexpectedly" (a
warning at collection, an error on a clean shutdown) after every shard labelled with workers
once a flow had run in the process. Workers forget those hooks when they start.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from torch.utils.data import DataLoader, Dataset


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


def _forget_parent_atexits(_worker_id: int) -> None:
    """DataLoader worker_init_fn: drop the thread at-exit hooks inherited from the parent (they
    belong to threads that a forked process does not have)."""
    hooks = getattr(threading, "_threading_atexits", None)  # CPython's list of such hooks
    if hooks is not None:
        hooks.clear()


def read_ahead(fn: Callable[[Any], Any], items: Sequence[Any], workers: int,
               depth: int = 2) -> Iterator[Any]:
    """fn(item) for each of `items`, in order; with workers > 0 computed ahead by worker
    processes (at most workers * depth results waiting)."""
    if workers == 0 or multiprocessing.current_process().daemon:
        return map(fn, items)
    loader = DataLoader(_Calls(fn, items), batch_size=None, shuffle=False, num_workers=workers,
                        prefetch_factor=depth, collate_fn=_as_is,
                        worker_init_fn=_forget_parent_atexits)
    return iter(loader)
