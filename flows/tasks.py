"""Prefect tasks: one per step of `flows.steps`, with tags, retries and names for the UI.

GPU work carries the tag `ovseg-gpu`: give it a concurrency limit of 1 per GPU worker
(`prefect concurrency-limit create ovseg-gpu 1`) so tasks never share a device. Only the
steps whose failures are transient I/O (the object store) are retried.
"""

from __future__ import annotations

from prefect import task as _task
from prefect.cache_policies import NO_CACHE

from flows import steps


def _transient(task, task_run, state) -> bool:
    """Retry only on I/O errors (network, object store), never on bugs or bad input."""
    try:
        state.result()
    except (OSError, TimeoutError):
        return True
    except Exception:
        return False
    return False


GPU = ["ovseg-gpu"]


def task(fn, **options):
    """A Prefect task that never caches: the store's commits decide what is done."""
    return _task(fn, cache_policy=NO_CACHE, **options)

stage_one = task(steps.run_stage_one, name="stage-one-train", tags=GPU)
shard_plan = task(steps.shard_plan, name="plan-shards")
label_shard = task(steps.label_shard, name="label-shard", tags=GPU,
                   task_run_name="label-round{round}-shard{shard[shard]}")
commit_round = task(steps.commit_round, name="commit-round", retries=2, retry_delay_seconds=5,
                    retry_condition_fn=_transient)
retrain = task(steps.retrain, name="retrain", tags=GPU, task_run_name="retrain-round{round}")
finish_round = task(steps.finish_round, name="measure-and-record",
                    task_run_name="finish-round{round}", retries=2, retry_delay_seconds=5,
                    retry_condition_fn=_transient)
