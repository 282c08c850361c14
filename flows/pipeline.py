"""The Prefect flows: stage one, one self-training round, the whole run, and evaluation.

Flows only sequence tasks and pass references (config, round ids, URIs, small dicts).
What is done is decided by the store (shard manifests, round commits, checkpoints, lineage),
so re-running a flow after a crash redoes exactly the missing work.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows import steps, tasks, watch
from flows.config import RunConfig
from flows.preflight import check_config
from flows.report import write_round_report
from ovseg_core.profiling import phase
from storage.records import utc_now


@flow(name="ovseg-stage-one", log_prints=True)
def stage_one(config: RunConfig) -> dict:
    """Supervised training on the labelled source; records round 0 in the lineage and writes
    its report (also when `next-round` runs it)."""
    check_config(config)
    train, _, _ = tasks.gpu_tasks(config)
    record = train(config)
    write_round_report(config, 0)
    return record


@flow(name="ovseg-self-training-round", flow_run_name="round-{round}", log_prints=True)
def self_training_round(config: RunConfig, round: int, redo: bool = False) -> dict:
    """Label the target with the parent checkpoint, commit the shards, retrain, record.

    redo: forget what the round and every later round committed, and compute this round
    again (the next `self_training` run computes the later ones from it).
    """
    if round < 1:
        raise ValueError("self-training rounds are numbered from 1 (round 0 is stage one)")
    check_config(config)
    if redo:
        print(steps.redo_round(config, round))
    done = steps.completed(config, "self_training_round", round)
    if done is not None:
        get_run_logger().info("round %d already completed; nothing to do", round)
        return done.to_dict()
    started = utc_now()
    parent = steps.parent_record(config, round).to_dict()
    shards = tasks.shard_plan(config, round, parent["checkpoint_sha256"])
    _, label, retrain = tasks.gpu_tasks(config)
    if config.cluster.task_runner == "local":  # in order, on this process's device
        for shard in shards:
            label(config, round, shard, parent)
    else:  # fanned out over the flow's Dask task runner, one shard per task
        futures = [label.submit(config, round, shard, parent) for shard in shards]
        for future in futures:
            future.result()
    tasks.commit_round(config, round, len(shards))
    checkpoint = retrain(config, round, parent)
    record = tasks.finish_round(config, round, parent, checkpoint, started)
    with phase("report"):
        write_round_report(config, round)
    return record


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
    if steps.completed(config, "stage_one", 0) is None:
        return stage_one(config)
    done = [r.round for r in steps.workspace(config).lineage()
            if r.stage == "self_training_round" and r.status == "completed"]
    return round_flow(config)(config, max(done, default=0) + 1)


@flow(name="ovseg-evaluate", log_prints=True)
def evaluate(config: RunConfig, round: int) -> dict:
    """mIoU of round `round`'s stored checkpoint on the run's labelled datasets."""
    check_config(config)
    stored = steps.workspace(config).checkpoint(round)
    if stored is None:
        raise ValueError(f"round {round} has no stored checkpoint in {config.workspace}")
    model = steps.load_checkpoint(config, round, stored.sha256)
    return steps.measure(config, model, round)


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
