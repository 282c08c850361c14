"""The Prefect flows: stage one, one self-training round, the whole run, and evaluation.

A round reads as the paper's loop, one task per step: plan the round (its parent, gates and
shards) -> label each shard -> commit -> (the compute-matched control) -> quality gate ->
retrain -> measure and record -> report. Flows only sequence tasks and pass the config and
records (`flows.records`). What is done is decided by the store (shard manifests, round
commits, checkpoints, lineage), so re-running a flow after a crash redoes exactly the missing
work. A flow returns its lineage record as a dict (what the command line's summary reads).
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows import steps, tasks, watch
from flows.config import RunConfig
from flows.context import TaskContext
from flows.preflight import check_config
from storage.records import utc_now
from storage.terms import COMPLETED, SELF_TRAINING_ROUND, STAGE_ONE
from storage.workspace import Workspace


@flow(name="ovseg-stage-one", log_prints=True)
def stage_one(config: RunConfig) -> dict:
    """Supervised training on the labelled source; records round 0 in the lineage and writes
    its report (also when `next-round` runs it)."""
    check_config(config)
    record = tasks.gpu_tasks(config).stage_one(config)
    tasks.report(config, 0)
    return record.to_dict()


@flow(name="ovseg-self-training-round", flow_run_name="round-{round}", log_prints=True)
def self_training_round(config: RunConfig, round: int, redo: bool = False) -> dict:
    """One round: plan it, label each shard with the parent checkpoint, commit, train and
    measure the round's compute-matched control (`self_training.control`), check the quality
    gate, retrain, measure and record, report; returns its lineage record.

    The control uses no pseudo-labels, so it runs before the gate: a round the gate stops
    has its control too, and a round completed in the lineage always has it (a round that
    completed while the control was off gets it when the flow runs again).

    redo: forget what the round and every later round committed (their controls too), and
    compute this round again (the next `self_training` run computes the later ones from it).
    """
    if round < 1:
        raise ValueError("self-training rounds are numbered from 1 (round 0 is stage one)")
    check_config(config)
    if redo:
        print(steps.redo_round(TaskContext.open(config), round))
    gpu = tasks.gpu_tasks(config)
    done = steps.completed(Workspace(config.workspace), SELF_TRAINING_ROUND, round)
    if done is not None:
        get_run_logger().info("round %d already completed", round)
        _controls(config, round, gpu.train_control)
        return done.to_dict()
    started = utc_now()
    plan = tasks.plan_round(config, round)
    if config.cluster.task_runner == "local":  # in order, on this process's device
        for shard in plan.shards:
            gpu.label_shard(config, shard, plan.parent)
    else:  # fanned out over the flow's Dask task runner, one shard per task
        futures = [gpu.label_shard.submit(config, shard, plan.parent) for shard in plan.shards]
        for future in futures:
            future.result()
    tasks.commit_round(config, plan)
    _controls(config, round, gpu.train_control)
    tasks.quality_gate(config, round)  # OvsegError: the round stops before retraining
    checkpoint = gpu.retrain(config, round, plan.parent)
    record = tasks.finish_round(config, plan.parent, checkpoint, started)
    tasks.report(config, round)
    return record.to_dict()


def _controls(config: RunConfig, round: int, train_control) -> None:
    """The `train_control` task of each round up to `round` whose control is missing (in
    order: each continues the one before); none when `self_training.control` is off."""
    for r in steps.missing_controls(config, Workspace(config.workspace), round):
        train_control(config, r)


@flow(name="ovseg-self-training", log_prints=True)
def self_training(config: RunConfig, rounds: int | None = None) -> list[dict]:
    """Stage one if needed, then `rounds` (default: config.self_training.rounds) rounds."""
    check_config(config)
    count = config.self_training.rounds if rounds is None else rounds
    records = [stage_one(config)]
    if not config.model.self_training:
        return records
    for r in range(1, count + 1):
        records.append(round_flow(config)(config, r))
    return records


def round_flow(config: RunConfig):
    """`self_training_round`, on a Dask task runner when the config asks for a cluster."""
    cluster = config.cluster
    if cluster.task_runner == "local":
        return self_training_round
    from prefect_dask import DaskTaskRunner

    if cluster.address:
        runner = DaskTaskRunner(address=cluster.address)
    else:
        kwargs = {} if cluster.cluster_class else {"processes": True, "threads_per_worker": 1}
        runner = DaskTaskRunner(cluster_class=cluster.cluster_class,
                                cluster_kwargs={"n_workers": cluster.workers, **kwargs})
    return self_training_round.with_options(task_runner=runner)


@flow(name="ovseg-next-round", log_prints=True)
def next_round(config: RunConfig) -> dict:
    """Stage one if it is missing, else the round after the last completed one.

    The flow to put on a schedule (a nightly round): each run adds one round.
    """
    check_config(config)
    store = Workspace(config.workspace)
    if steps.completed(store, STAGE_ONE, 0) is None:
        return stage_one(config)
    done = [r.round for r in store.lineage()
            if r.stage == SELF_TRAINING_ROUND and r.status == COMPLETED]
    return round_flow(config)(config, max(done, default=0) + 1)


@flow(name="ovseg-evaluate", log_prints=True)
def evaluate(config: RunConfig, round: int) -> dict:
    """mIoU of round `round`'s stored checkpoint on the run's labelled datasets."""
    check_config(config)
    ctx = TaskContext.open(config)
    stored = ctx.store.checkpoint(round)
    if stored is None:
        raise ValueError(f"round {round} has no stored checkpoint in {config.workspace}")
    model = ctx.load_checkpoint(round, stored.sha256)
    return steps.measure(ctx.plan, ctx.runtime, model, round)


@flow(name="ovseg-watch-target")
def watch_target(config: RunConfig, deployment: str = "ovseg-next-round/next-round") -> dict:
    """Start the `deployment` run (next-round) when the target's images changed since the last
    completed round and no run of it is under way; put it on a short interval."""
    check_config(config)
    log = get_run_logger()
    change = watch.target_change(config)
    log.info(change["reason"])
    if not change["changed"]:
        return change | {"started": None}
    busy = watch.runs_under_way(deployment)
    if busy:
        log.info("not starting %s: %s is under way", deployment, ", ".join(busy))
        return change | {"started": None}
    started = watch.start_round(deployment, config)
    log.info("started %s (flow run %s)", deployment, started)
    return change | {"started": started}
