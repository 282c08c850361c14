"""What every DataLoader worker of ovseg runs first (`worker_init_fn`).

Workers are forked. A forked worker inherits the at-exit hooks the parent's threads registered
(`threading._register_atexit`): Prefect's queue services (`prefect._internal.concurrency.
services`) register one that drains their queue through a thread the child does not have. It
failed at the worker's exit, the worker exited with code 1, and torch reported "DataLoader
worker exited unexpectedly" once a flow had run in the process: a traceback at the end of every
training run and labelled shard with workers (an error where the loader was run to its end).
"""

from __future__ import annotations

import threading


def forget_parent_atexits(_worker_id: int) -> None:
    """DataLoader worker_init_fn: drop the thread at-exit hooks inherited from the parent (they
    belong to threads a forked process does not have)."""
    hooks = getattr(threading, "_threading_atexits", None)  # CPython's list of such hooks
    if hooks is not None:
        hooks.clear()
