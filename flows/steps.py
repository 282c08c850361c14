"""The steps of a run besides labelling, as plain functions over a task's context and records.

Prefect tasks in `flows.tasks` open the context (`flows.context.TaskContext`) and call these;
tests call them directly too. Each step writes its result to the store itself and is
idempotent: what the store already holds with a matching key is skipped, so a re-run after a
crash redoes only the missing work. Labelling is `flows.labelling`, the quality gate
`flows.quality_gate`.
"""

from __future__ import annotations

import functools

from flows import training
from flows.clip_weights import clip_metrics, clip_weights, ensure_clip
from flows.config import RunConfig
from flows.context import TaskContext
from flows.faults import kill_point
from flows.plan import DataPlan, round_manifest_hash
from flows.quality import round_quality
from flows.records import ParentRef, RoundPlan, StoredCheckpoint
from flows.teacher import teacher_metrics
from ovseg_core.config import preset
from ovseg_core.device import Runtime
from ovseg_core.errors import OvsegError
from ovseg_core.inference import evaluate
from ovseg_core.launch import TrainJob, launch
from ovseg_core.modeling.build import build_model
from ovseg_core.profiling import phase
from ovseg_core.progress import step_name
from ovseg_core.train import TrainConfig, read_train_log, train
from storage.query import connect
from storage.records import LineageRecord, utc_now
from storage.stats import round_counts
from storage.terms import COMPLETED, CONTROL, SELF_TRAINING_ROUND, STAGE_ONE, training_stage
from storage.workspace import Workspace


# ---- what the config decides
def model_config(cfg: RunConfig):
    """The model the run builds: the preset with the run's model settings and weight files."""
    m = cfg.model
    overrides = {"dea_enabled": m.dea, "self_training": m.self_training}
    weights = clip_weights(cfg)
    if weights:
        overrides["clip"] = {"pretrained": weights}
    sam = {"checkpoint": m.sam_checkpoint} if m.sam_checkpoint else {}
    if m.sam_variant:
        sam |= {"variant": m.sam_variant, "image_size": None}
    if sam:
        overrides["sam"] = sam
    if m.input_size:
        overrides["input_size"] = m.input_size
    return preset(m.preset, **overrides)


def train_config(cfg: RunConfig, retrain: bool, seed: int) -> TrainConfig:
    """Stage-one or retraining settings of the run (translated in `flows.training`)."""
    return training.train_config(cfg.train, cfg.model.preset, model_config(cfg).input_size,
                                 seed, retrain)


# ---- what the store says is done
def completed(store: Workspace, stage: str, round: int) -> LineageRecord | None:
    """The completed lineage record of `stage` in round `round`, or None."""
    for record in store.lineage(round):
        if record.stage == stage and record.status == COMPLETED:
            return record
    return None


def parent_ref(store: Workspace, round: int) -> ParentRef:
    """The completed stage whose checkpoint round `round` starts from (round - 1)."""
    stage = training_stage(round - 1)
    record = completed(store, stage, round - 1)
    if record is None:
        raise OvsegError(f"round {round - 1} ({stage}) has not completed in {store.root}; "
                         "run it first")
    return ParentRef(record.round, record.checkpoint_sha256)


# ---- stage one
def run_stage_one(ctx: TaskContext) -> LineageRecord:
    """Train on the labelled source, store the checkpoint, measure, record lineage (round 0)."""
    done = completed(ctx.store, STAGE_ONE, 0)
    if done is not None:
        return done
    cfg, plan, started = ctx.cfg, ctx.plan, utc_now()
    clip = ensure_clip(cfg)
    model = build_model(model_config(cfg), seed=cfg.seed)
    out = ctx.round_dir(0, "train")
    result = train(model, plan.source, plan.source_classes, [True] * len(plan.source_classes),
                   train_config(cfg, retrain=False, seed=cfg.seed), out, ctx.runtime,
                   on_step=lambda step, _loss: kill_point(f"train_step:0:{step}"),
                   desc=step_name(0, "train"))
    ckpt = ctx.store.put_checkpoint(0, str(out))
    metrics = measure(plan, ctx.runtime, model, round=0)
    record = lineage_record(ctx, STAGE_ONE, 0, StoredCheckpoint(0, ckpt.uri, ckpt.sha256),
                            started, rows={"train_images": len(plan.source),
                                           "steps": result.steps},
                            metrics=metrics | clip_metrics(clip))
    ctx.store.write_lineage(record)
    return record


# ---- a self-training round (labelling: flows/labelling.py; the gate: flows/quality_gate.py)
def commit_round(store: Workspace, plan: RoundPlan) -> None:
    """Mark the round's shards as one committed round (idempotent)."""
    store.commit_round(plan.round, len(plan.shards))


def redo_round(ctx: TaskContext, round: int) -> str:
    """Forget everything round `round` and every later round produced (they descend from its
    checkpoint) so the next run recomputes them; returns a line saying which were forgotten."""
    import shutil

    dropped = ctx.store.redo_from(round)
    for r in dropped:
        shutil.rmtree(ctx.round_dir(r), ignore_errors=True)
    later = ", ".join(str(r) for r in dropped if r > round)
    return f"forgot round {round}" + (f" and the round(s) trained from it: {later}"
                                      if later else "")


def retrain(ctx: TaskContext, round: int, parent: ParentRef) -> StoredCheckpoint:
    """Retrain from the parent checkpoint on the round's selected pseudo-labels; store it.
    Runs after the round's quality gate passed (`flows.quality_gate.check_round`)."""
    stored = ctx.store.checkpoint(round)
    if stored is not None:
        return StoredCheckpoint(round, stored.uri, stored.sha256)
    cfg, plan = ctx.cfg, ctx.plan
    with phase("selection"):  # reads and paints the round's selected rows
        samples = training.retrain_samples(ctx, round)
    out = ctx.round_dir(round, "train")
    settings = train_config(cfg, retrain=True, seed=cfg.seed + round)
    on_step = functools.partial(training.kill_point_at_step, round)
    with phase("retrain"):
        if cfg.train.processes > 1:  # the same training as DDP; rank 0 writes `out`
            init = str(ctx.checkpoint_dir(parent.round, parent.checkpoint_sha256))
            launch(TrainJob(init, training.retrain_samples_of, (cfg, round),
                            plan.target_classes, plan.target_seen, settings, str(out),
                            cfg.device, on_step), cfg.train.processes)
        else:
            model = ctx.load_checkpoint(parent.round, parent.checkpoint_sha256, cached=False)
            train(model, samples, plan.target_classes, plan.target_seen, settings, out,
                  ctx.runtime, on_step=on_step, desc=step_name(round, "retrain"))
    with phase("storage"):
        ckpt = ctx.store.put_checkpoint(round, str(out))
    return StoredCheckpoint(round, ckpt.uri, ckpt.sha256)


# ---- the compute-matched control of a round
def missing_controls(cfg: RunConfig, store: Workspace, round: int) -> list[int]:
    """Rounds 1..`round` without a completed control, ascending; [] when
    `self_training.control` is off. Each control starts from the one before it, so they are
    trained in this order."""
    if not cfg.self_training.control:
        return []
    return [r for r in range(1, round + 1) if completed(store, CONTROL, r) is None]


def control_parent(store: Workspace, round: int) -> ParentRef:
    """What round `round`'s control continues: round - 1's control, stage one for round 1."""
    stage = CONTROL if round > 1 else STAGE_ONE
    record = completed(store, stage, round - 1)
    if record is None:
        raise OvsegError(f"round {round - 1} has no completed {stage.replace('_', ' ')} in "
                         f"{store.root}; run `ovseg run` (it trains the missing controls in "
                         "order)")
    return ParentRef(record.round, record.checkpoint_sha256)


def train_control(ctx: TaskContext, round: int) -> LineageRecord:
    """Round `round`'s compute-matched control: continue the parent control
    (`control_parent`) on the labelled source alone, remapped into the target vocabulary
    (`training.source_in_target`), with the round's retraining settings (steps, batch size,
    learning-rate schedule, seed: `train_config(retrain=True, seed + round)`); store it under
    checkpoints/control/, measure it like the round (`measure`) and write its `control`
    lineage record. Idempotent: a completed record is returned as it is, a stored checkpoint
    is measured without training again, a killed training resumes from its trainer state."""
    done = completed(ctx.store, CONTROL, round)
    if done is not None:
        return done
    started, parent = utc_now(), control_parent(ctx.store, round)
    settings = train_config(ctx.cfg, retrain=True, seed=ctx.cfg.seed + round)
    stored = (ctx.store.checkpoint(round, control=True)
              or _train_control(ctx, round, parent, settings))
    ckpt = StoredCheckpoint(round, stored.uri, stored.sha256)
    model = ctx.load_checkpoint(round, ckpt.sha256, cached=False, control=True)
    rows = {"train_images": len(ctx.plan.source), "steps": settings.steps,
            "batch_size": settings.batch_size}
    record = lineage_record(ctx, CONTROL, round, ckpt, started, rows=rows,
                            metrics=measure(ctx.plan, ctx.runtime, model, round,
                                            "evaluate the control"), parent=parent)
    ctx.store.write_lineage(record)
    return record


def _train_control(ctx: TaskContext, round: int, parent: ParentRef, settings: TrainConfig):
    """Train round `round`'s control from `parent` (stage one's or the previous control's
    checkpoint) with `settings` and store it; returns the store's CheckpointRecord."""
    cfg, plan = ctx.cfg, ctx.plan
    out = ctx.round_dir(round, "control")
    from_control = parent.round > 0
    with phase("control"):
        if cfg.train.processes > 1:  # as the round's retraining: DDP, rank 0 writes `out`
            init = str(ctx.checkpoint_dir(parent.round, parent.checkpoint_sha256, from_control))
            launch(TrainJob(init, training.control_samples_of, (cfg,), plan.target_classes,
                            plan.target_seen, settings, str(out), cfg.device), cfg.train.processes)
        else:
            model = ctx.load_checkpoint(parent.round, parent.checkpoint_sha256, cached=False,
                                        control=from_control)
            train(model, training.source_in_target(plan), plan.target_classes, plan.target_seen,
                  settings, out, ctx.runtime, desc=step_name(round, "control"))
    with phase("storage"):
        return ctx.store.put_checkpoint(round, str(out), control=True)


def measure(plan: DataPlan, runtime: Runtime, model, round: int, what: str = "evaluate") -> dict:
    """mIoU (%) on the source validation split (stage one) and the labelled target, where
    present: {"source_val_miou"?, "target_miou", "target_seen_miou", "target_unseen_miou"};
    `what` names the step in the progress lines ("round 2: <what> (held-out target)")."""
    with phase("evaluate"):
        metrics = {}
        model.eval()
        if round == 0 and plan.source_val is not None:
            result = evaluate(model, plan.source_val, runtime,
                              desc=step_name(round, f"{what} (source val)"))
            metrics["source_val_miou"] = result["miou"]
        if plan.target_eval is not None:  # in the labelled dataset's own vocabulary and ids
            names = plan.target_eval.class_names
            result = evaluate(model, plan.target_eval, runtime, seen=plan.seen(names),
                              desc=step_name(round, f"{what} (held-out target)"))
            metrics.update(target_miou=result["miou"], target_seen_miou=result["seen_miou"],
                           target_unseen_miou=result["unseen_miou"])
        return metrics


def finish_round(ctx: TaskContext, parent: ParentRef, ckpt: StoredCheckpoint,
                 started: str) -> LineageRecord:
    """Measure the round's checkpoint and write its immutable lineage record."""
    round = ckpt.round
    done = completed(ctx.store, SELF_TRAINING_ROUND, round)
    if done is not None:
        return done
    model = ctx.load_checkpoint(round, ckpt.sha256)
    with phase("storage"), connect(ctx.store) as con:  # one snapshot for both
        rows = round_counts(con, round)
        quality = round_quality(con, round, ctx.plan, ctx.resolved.selection)
        quality |= teacher_metrics(con, round, ctx.plan)
    record = lineage_record(ctx, SELF_TRAINING_ROUND, round, ckpt, started, rows=rows,
                            metrics=measure(ctx.plan, ctx.runtime, model, round) | quality,
                            parent=parent,
                            manifest_hash=round_manifest_hash(ctx.store, round))
    ctx.store.write_lineage(record)
    return record


def lineage_record(ctx: TaskContext, stage: str, round: int, ckpt: StoredCheckpoint,
                   started: str, rows: dict, metrics: dict, parent: ParentRef | None = None,
                   manifest_hash: str | None = None) -> LineageRecord:
    """The stage's lineage record; `manifest_hash` of the target files it saw (default: the
    target as it is now)."""
    from storage.lineage import package_provenance

    cfg = ctx.cfg
    version, commit = package_provenance()
    return LineageRecord(
        stage=stage, round=round, parent_round=parent and parent.round,
        checkpoint_uri=ckpt.uri, checkpoint_sha256=ckpt.sha256,
        config=cfg.model_dump(mode="json", exclude={"workspace"}),
        package_version=version, git_commit=commit,
        dataset_manifest_hash=manifest_hash or ctx.plan.target_manifest_hash(),
        gate_threshold=cfg.self_training.gate_threshold if stage == SELF_TRAINING_ROUND
        else None,
        started_at=started, ended_at=utc_now(), status=COMPLETED, row_counts=rows,
        metrics=metrics, resolved=ctx.resolved.as_dict())


def train_summary(ctx: TaskContext, round: int, folder: str = "train") -> dict:
    """{"steps", "loss"} of the last logged step of round `round`'s training on this machine
    (stage one or retraining; `folder` "control": its control's; from its training log), {}
    when it did not train here."""
    log = read_train_log(ctx.round_dir(round, folder))
    return {"steps": log[-1]["step"], "loss": log[-1]["loss"]} if log else {}
