"""Prefect tasks: one per step of `flows.steps`, with tags, retries and names for the UI.

GPU work carries the tag `cluster.gpu_tag` (default `ovseg-gpu`): give it a concurrency limit
of 1 per GPU worker (`prefect concurrency-limit create ovseg-gpu 1`) so tasks never share a
device. A tagged task asks the Prefect server for a slot before it starts, and on Prefect's
SQLite-backed server (the temporary one and `prefect server start`'s default) that call was
answered 503 and retried after about 2 s for most tasks more than 5 s apart (Prefect caches
"no limit" for 5 s): 7.0 s of a 34.1 s round of 512 images under cProfile. So the tag is
applied only where it guards a device: not when the steps run on this process's CPU
(`gpu_tasks`). Only the steps whose failures are transient I/O (the object store) are retried.
"""

from __future__ import annotations

from prefect import task as _task
from prefect.cache_policies import NO_CACHE

from flows import labelling, steps


def _transient(task, task_run, state) -> bool:
    """Retry only on I/O errors (network, object store), never on bugs or bad input."""
    try:
        state.result()
    except (OSError, TimeoutError):
        return True
    except Exception:
        return False
    return False


def task(fn, **options):
    """A Prefect task that never caches: the store's commits decide what is done."""
    return _task(fn, cache_policy=NO_CACHE, **options)


def _log():
    from prefect import get_run_logger

    return get_run_logger()


def train_stage_one(config) -> dict:
    """`steps.run_stage_one`, logging the images, steps and loss it trained with."""
    record = steps.run_stage_one(config)
    trained = steps.train_summary(config, 0)
    _log().info("stage one: %s source images, step %s, loss %s; checkpoint %s",
                record["row_counts"].get("train_images"), trained.get("steps", "-"),
                trained.get("loss", "- (trained elsewhere)"), record["checkpoint_sha256"][:12])
    return record


def plan_shards(config, round: int, parent_sha: str) -> list[dict]:
    """`labelling.shard_plan`, logging how many target images the round labels."""
    shards = labelling.shard_plan(config, round, parent_sha)
    images = sum(len(s["image_ids"]) for s in shards)
    _log().info("round %d: %d target images in %d shard(s)", round, images, len(shards))
    return shards


def label_and_commit(config, round: int, shard: dict, parent: dict) -> dict:
    """`labelling.label_shard`, logging what the shard's labelling did."""
    done = labelling.label_shard(config, round, shard, parent)
    if done["skipped"]:
        _log().info("round %d shard %d: already committed, skipped", round, done["shard"])
    else:
        _log().info("round %d shard %d: %d images (%d unreadable), %d regions, %d gated, "
                    "%d refined by SAM, %d rows written", round, done["shard"], done["images"],
                    done["unreadable"], done["regions"], done["gated"], done["refined"],
                    done["rows"])
    return done


def retrain_and_log(config, round: int, parent: dict) -> dict:
    """`steps.retrain`, logging its steps and loss."""
    checkpoint = steps.retrain(config, round, parent)
    trained = steps.train_summary(config, round)
    _log().info("round %d retrained from round %d: step %s, loss %s; checkpoint %s", round,
                parent["round"], trained.get("steps", "-"),
                trained.get("loss", "- (trained elsewhere)"), checkpoint["sha256"][:12])
    return checkpoint


def finish_and_log(config, round: int, parent: dict, ckpt: dict, started: str) -> dict:
    """`steps.finish_round`, logging the round's counts and target mIoU."""
    record = steps.finish_round(config, round, parent, ckpt, started)
    rows, metrics = record["row_counts"], record["metrics"]
    _log().info("round %d recorded: %s images, %s regions, %s gated, %s refined; target mIoU "
                "%s (unseen %s)", round, rows.get("images"), rows.get("regions"),
                rows.get("gated"), rows.get("refined"), _pct(metrics.get("target_miou")),
                _pct(metrics.get("target_unseen_miou")))
    return record


def _pct(value) -> str:
    return "-" if value is None else f"{value:.2f}%"


stage_one = task(train_stage_one, name="stage-one-train")
shard_plan = task(plan_shards, name="plan-shards")
label_shard = task(label_and_commit, name="label-shard",
                   task_run_name="label-round{round}-shard{shard[shard]}")
commit_round = task(steps.commit_round, name="commit-round", retries=2, retry_delay_seconds=5,
                    retry_condition_fn=_transient)
retrain = task(retrain_and_log, name="retrain", task_run_name="retrain-round{round}")
finish_round = task(finish_and_log, name="measure-and-record",
                    task_run_name="finish-round{round}", retries=2, retry_delay_seconds=5,
                    retry_condition_fn=_transient)


def gpu_tasks(config):
    """(stage one, label shard, retrain) carrying `cluster.gpu_tag`, unless the run's steps
    run on this process's CPU (local task runner, device resolving to the CPU here)."""
    gpu_steps = (stage_one, label_shard, retrain)
    tag = config.cluster.gpu_tag
    on_cpu_here = (config.cluster.task_runner == "local"
                   and steps.runtime_for(config.device).device.type == "cpu")
    if tag is None or on_cpu_here:
        return gpu_steps
    return tuple(t.with_options(tags=[tag]) for t in gpu_steps)
