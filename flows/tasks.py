"""Prefect tasks: one per step of a round, with tags, retries, names for the UI and a log line.

Each task opens its context once from the run config (`flows.context.TaskContext.open`) and
hands its step records (`flows.records`).

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

from typing import NamedTuple

from prefect import Task
from prefect import task as _task
from prefect.cache_policies import NO_CACHE

from flows import labelling, steps
from flows.config import RunConfig
from flows.context import RESOURCES, TaskContext
from flows.quality_gate import check_round
from flows.records import (
    GateOutcome,
    LabelledShard,
    ParentRef,
    RoundPlan,
    ShardPlan,
    StoredCheckpoint,
)
from ovseg_core.profiling import phase
from storage.records import LineageRecord
from storage.workspace import Workspace


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


def train_stage_one(config: RunConfig) -> LineageRecord:
    """`steps.run_stage_one`, logging the images, steps and loss it trained with."""
    ctx = TaskContext.open(config)
    record = steps.run_stage_one(ctx)
    trained = steps.train_summary(ctx, 0)
    _log().info("stage one: %s source images, step %s, loss %s; checkpoint %s",
                record.row_counts.get("train_images"), trained.get("steps", "-"),
                trained.get("loss", "- (trained elsewhere)"), record.checkpoint_sha256[:12])
    return record


def plan_and_log(config: RunConfig, round: int) -> RoundPlan:
    """`labelling.plan_round`, logging the round's parent, images and gates."""
    plan = labelling.plan_round(TaskContext.open(config), round)
    gates = plan.gates if isinstance(plan.gates, float) else f"{len(plan.gates)} per class"
    _log().info("round %d: %d target images in %d shard(s), from round %d's checkpoint %s, "
                "gate %s", round, plan.image_count, len(plan.shards), plan.parent.round,
                plan.parent.checkpoint_sha256[:12], gates)
    return plan


def label_and_commit(config: RunConfig, shard: ShardPlan, parent: ParentRef) -> LabelledShard:
    """`labelling.label_shard`, logging what the shard's labelling did."""
    done = labelling.label_shard(TaskContext.open(config), shard, parent)
    if done.skipped:
        _log().info("round %d shard %d: already committed, skipped", done.round, done.shard)
    else:
        _log().info("round %d shard %d: %d images (%d unreadable), %d regions, %d gated, "
                    "%d refined by SAM, %d rows written", done.round, done.shard, done.images,
                    done.unreadable, done.regions, done.gated, done.refined, done.rows)
    return done


def commit_and_log(config: RunConfig, plan: RoundPlan) -> None:
    """`steps.commit_round`, logging it."""
    steps.commit_round(Workspace(config.workspace), plan)
    _log().info("round %d committed: %d shard(s)", plan.round, len(plan.shards))


def gate_and_log(config: RunConfig, round: int) -> GateOutcome:
    """`quality_gate.check_round`: fails (OvsegError) when the gate stops the round."""
    outcome = check_round(TaskContext.open(config), round)
    if outcome.skipped:
        _log().info("round %d: quality gate passed before", round)
    else:
        _log().info("round %d: quality gate %s (%d check(s), %d failed)", round,
                    "accepted despite failing checks" if outcome.failed else "passed",
                    len(outcome.checks), len(outcome.failed))
    return outcome


def retrain_and_log(config: RunConfig, round: int, parent: ParentRef) -> StoredCheckpoint:
    """`steps.retrain`, logging its steps and loss."""
    ctx = TaskContext.open(config)
    checkpoint = steps.retrain(ctx, round, parent)
    trained = steps.train_summary(ctx, round)
    _log().info("round %d retrained from round %d: step %s, loss %s; checkpoint %s", round,
                parent.round, trained.get("steps", "-"),
                trained.get("loss", "- (trained elsewhere)"), checkpoint.sha256[:12])
    return checkpoint


def control_and_log(config: RunConfig, round: int) -> LineageRecord:
    """`steps.train_control`, logging its steps and the control's target mIoU."""
    ctx = TaskContext.open(config)
    record = steps.train_control(ctx, round)
    trained = steps.train_summary(ctx, round, "control")
    metrics = record.metrics
    _log().info("round %d control: trained from %s on the labelled source, step %s, loss %s; "
                "checkpoint %s; target mIoU %s (seen %s, unseen %s)", round,
                "stage one" if record.parent_round == 0 else
                f"round {record.parent_round}'s control", trained.get("steps", "-"),
                trained.get("loss", "- (trained elsewhere)"), record.checkpoint_sha256[:12],
                _pct(metrics.get("target_miou")), _pct(metrics.get("target_seen_miou")),
                _pct(metrics.get("target_unseen_miou")))
    return record


def finish_and_log(config: RunConfig, parent: ParentRef, checkpoint: StoredCheckpoint,
                   started: str) -> LineageRecord:
    """`steps.finish_round`, logging the round's counts and target mIoU."""
    record = steps.finish_round(TaskContext.open(config), parent, checkpoint, started)
    rows, metrics = record.row_counts, record.metrics
    _log().info("round %d recorded: %s images, %s regions, %s gated, %s refined; target mIoU "
                "%s (unseen %s)", record.round, rows.get("images"), rows.get("regions"),
                rows.get("gated"), rows.get("refined"), _pct(metrics.get("target_miou")),
                _pct(metrics.get("target_unseen_miou")))
    return record


def report_and_log(config: RunConfig, round: int) -> None:
    """`flows.report.write_round_report` (stage one is round 0), logging where it went."""
    from flows.report import write_round_report

    with phase("report"):
        write_round_report(config, round)
    _log().info("round %d: report written under %s/reports", round, config.workspace)


def _pct(value) -> str:
    return "-" if value is None else f"{value:.2f}%"


stage_one = task(train_stage_one, name="stage-one-train")
plan_round = task(plan_and_log, name="plan-round", task_run_name="plan-round{round}")
label_shard = task(label_and_commit, name="label-shard",
                   task_run_name="label-round{shard.round}-shard{shard.shard}")
commit_round = task(commit_and_log, name="commit-round", task_run_name="commit-round{plan.round}",
                    retries=2, retry_delay_seconds=5, retry_condition_fn=_transient)
quality_gate = task(gate_and_log, name="quality-gate", task_run_name="quality-gate-round{round}")
retrain = task(retrain_and_log, name="retrain", task_run_name="retrain-round{round}")
train_control = task(control_and_log, name="train-control",
                     task_run_name="train-control-round{round}")
finish_round = task(finish_and_log, name="measure-and-record",
                    task_run_name="finish-round{checkpoint.round}", retries=2,
                    retry_delay_seconds=5, retry_condition_fn=_transient)
report = task(report_and_log, name="report", task_run_name="report-round{round}")


class GpuTasks(NamedTuple):
    """The tasks that use the device."""

    stage_one: Task
    label_shard: Task
    retrain: Task
    train_control: Task


def gpu_tasks(config: RunConfig) -> GpuTasks:
    """The device's tasks carrying `cluster.gpu_tag`, unless the run's steps run on this
    process's CPU (local task runner, device resolving to the CPU here)."""
    gpu_steps = GpuTasks(stage_one, label_shard, retrain, train_control)
    tag = config.cluster.gpu_tag
    on_cpu_here = (config.cluster.task_runner == "local"
                   and RESOURCES.runtime(config.device).device.type == "cpu")
    if tag is None or on_cpu_here:
        return gpu_steps
    return GpuTasks(*(t.with_options(tags=[tag]) for t in gpu_steps))
