"""The steps of a run as plain functions over (config, references) -> small dicts.

Prefect tasks in `flows.tasks` wrap these one to one; tests call them directly too. Each step
writes its result to the store itself and is idempotent: what the store already holds with a
matching key is skipped, so a re-run after a crash redoes only the missing work.
"""

from __future__ import annotations

import functools
from functools import cache

from flows import quality_gate, training
from flows.clip_weights import clip_metrics, clip_weights, ensure_clip
from flows.config import RunConfig
from flows.faults import kill_point
from flows.plan import data_plan, local_dir, round_manifest_hash, workspace
from flows.quality import round_quality
from ovseg_core.checkpoint import load_model
from ovseg_core.config import preset
from ovseg_core.device import Runtime, pick_runtime
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


# ---- shared resources (per process)
@cache
def runtime_for(device: str | None) -> Runtime:
    return pick_runtime(device)


def model_config(cfg: RunConfig):
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
    return preset(m.preset, **overrides)


def train_config(cfg: RunConfig, retrain: bool, seed: int) -> TrainConfig:
    """Stage-one or retraining settings of the run (translated in `flows.training`)."""
    return training.train_config(cfg.train, cfg.model.preset, model_config(cfg).input_size,
                                 seed, retrain)


def parent_record(cfg: RunConfig, round: int) -> LineageRecord:
    """The completed lineage record whose checkpoint round `round` starts from."""
    stage = "stage_one" if round - 1 == 0 else "self_training_round"
    for record in workspace(cfg).lineage(round - 1):
        if record.stage == stage and record.status == "completed":
            return record
    raise OvsegError(f"round {round - 1} ({stage}) has not completed in {cfg.workspace}; "
                     "run it first")


def completed(cfg: RunConfig, stage: str, round: int) -> LineageRecord | None:
    for record in workspace(cfg).lineage(round):
        if record.stage == stage and record.status == "completed":
            return record
    return None


_MODEL: dict[tuple, object] = {}


def load_checkpoint(cfg: RunConfig, round: int, sha256: str, cached: bool = True):
    """Round `round`'s stored model, fetched into the local cache once per checkpoint hash.

    cached: keep (and reuse) the last model loaded, so a worker labelling many shards loads
    it once; pass False for a copy the caller may change (retraining).

    Found by round, not by URI, so a workspace that was moved or copied still works; the
    hash recorded in the lineage must match the stored weights.
    """
    key = (cfg.workspace, round, sha256, cfg.device)
    if cached and key in _MODEL:
        return _MODEL[key]
    with phase("load_model"):
        model = load_model(checkpoint_dir(cfg, round, sha256)).to(runtime_for(cfg.device).device)
    if cached:
        _MODEL.clear()
        _MODEL[key] = model
    return model


def checkpoint_dir(cfg: RunConfig, round: int, sha256: str):
    """The local folder of round `round`'s stored checkpoint, fetched once per hash (the hash
    recorded in the lineage must match the stored weights)."""
    stored = workspace(cfg).checkpoint(round)
    if stored is None or stored.sha256 != sha256:
        raise OvsegError(f"round {round}'s checkpoint {sha256[:12]} is missing from "
                           f"{cfg.workspace} (found {stored.sha256[:12] if stored else 'none'})")
    dest = local_dir(cfg, "checkpoints", sha256[:16])
    if not (dest / "model.safetensors").exists():
        workspace(cfg).fetch_checkpoint(stored.uri, str(dest))
    return dest


# ---- stage one
def run_stage_one(cfg: RunConfig) -> dict:
    """Train on the labelled source, store the checkpoint, measure, record lineage (round 0)."""
    done = completed(cfg, "stage_one", 0)
    if done is not None:
        return done.to_dict()
    started, plan, ws = utc_now(), data_plan(cfg), workspace(cfg)
    clip = ensure_clip(cfg)
    model = build_model(model_config(cfg), seed=cfg.seed)
    out = local_dir(cfg, "round=000", "train")
    result = train(model, plan.source, plan.source_classes, [True] * len(plan.source_classes),
                   train_config(cfg, retrain=False, seed=cfg.seed), out, runtime_for(cfg.device),
                   on_step=lambda step, _loss: kill_point(f"train_step:0:{step}"),
                   desc=step_name(0, "train"))
    ckpt = ws.put_checkpoint(0, str(out))
    metrics = measure(cfg, model, round=0)
    record = lineage_record(cfg, "stage_one", 0, None, ckpt.uri, ckpt.sha256, started,
                            rows={"train_images": len(plan.source), "steps": result.steps},
                            metrics=metrics | clip_metrics(clip))
    ws.write_lineage(record)
    return record.to_dict()


# ---- a self-training round (labelling: flows/labelling.py)
def commit_round(cfg: RunConfig, round: int, count: int) -> None:
    """Mark the round's `count` shards as one committed round (idempotent)."""
    workspace(cfg).commit_round(round, count)


def redo_round(cfg: RunConfig, round: int) -> str:
    """Forget everything round `round` and every later round produced (they descend from its
    checkpoint) so the next run recomputes them; returns a line saying which were forgotten."""
    import shutil

    dropped = workspace(cfg).redo_from(round)
    for r in dropped:
        shutil.rmtree(local_dir(cfg, f"round={r:03d}"), ignore_errors=True)
    later = ", ".join(str(r) for r in dropped if r > round)
    return f"forgot round {round}" + (f" and the round(s) trained from it: {later}"
                                      if later else "")


def retrain(cfg: RunConfig, round: int, parent: dict) -> dict:
    """Retrain from the parent checkpoint on the round's selected pseudo-labels; store it."""
    ws = workspace(cfg)
    stored = ws.checkpoint(round)
    if stored is not None:
        return {"uri": stored.uri, "sha256": stored.sha256}
    quality_gate.check_round(cfg, round)  # OvsegError: the round stops before retraining
    plan = data_plan(cfg)
    with phase("selection"):  # reads and paints the round's selected rows
        samples = training.retrain_samples(cfg, round)
    out = local_dir(cfg, f"round={round:03d}", "train")
    settings = train_config(cfg, retrain=True, seed=cfg.seed + round)
    on_step = functools.partial(training.kill_point_at_step, round)
    with phase("retrain"):
        if cfg.train.processes > 1:  # the same training as DDP; rank 0 writes `out`
            init = str(checkpoint_dir(cfg, parent["round"], parent["checkpoint_sha256"]))
            launch(TrainJob(init, training.retrain_samples, (cfg, round), plan.target_classes,
                            plan.target_seen, settings, str(out), cfg.device, on_step),
                   cfg.train.processes)
        else:
            model = load_checkpoint(cfg, parent["round"], parent["checkpoint_sha256"],
                                    cached=False)
            train(model, samples, plan.target_classes, plan.target_seen, settings, out,
                  runtime_for(cfg.device), on_step=on_step, desc=step_name(round, "retrain"))
    with phase("storage"):
        ckpt = ws.put_checkpoint(round, str(out))
    return {"uri": ckpt.uri, "sha256": ckpt.sha256}


def measure(cfg: RunConfig, model, round: int) -> dict:
    """mIoU (%) on the source validation split and the labelled target, where present."""
    with phase("evaluate"):
        return _measure(cfg, model, round)


def _measure(cfg: RunConfig, model, round: int) -> dict:
    plan, runtime, metrics = data_plan(cfg), runtime_for(cfg.device), {}
    model.eval()
    if round == 0 and plan.source_val is not None:
        result = evaluate(model, plan.source_val, runtime,
                          desc=step_name(round, "evaluate (source val)"))
        metrics["source_val_miou"] = result["miou"]
    if plan.target_eval is not None:  # in the labelled dataset's own vocabulary and ids
        names = plan.target_eval.class_names
        result = evaluate(model, plan.target_eval, runtime, seen=plan.seen(names),
                          desc=step_name(round, "evaluate (held-out target)"))
        metrics.update(target_miou=result["miou"], target_seen_miou=result["seen_miou"],
                       target_unseen_miou=result["unseen_miou"])
    return metrics


def finish_round(cfg: RunConfig, round: int, parent: dict, ckpt: dict, started: str) -> dict:
    """Measure the round's checkpoint and write its immutable lineage record."""
    done = completed(cfg, "self_training_round", round)
    if done is not None:
        return done.to_dict()
    model = load_checkpoint(cfg, round, ckpt["sha256"])
    with phase("storage"), connect(workspace(cfg)) as con:  # one snapshot for both
        rows = round_counts(con, round)
        quality = round_quality(con, round, data_plan(cfg), cfg.self_training.selection)
    record = lineage_record(cfg, "self_training_round", round, round - 1, ckpt["uri"],
                            ckpt["sha256"], started, rows=rows,
                            metrics=measure(cfg, model, round) | quality,
                            manifest_hash=round_manifest_hash(cfg, round))
    workspace(cfg).write_lineage(record)
    return record.to_dict()


def lineage_record(cfg: RunConfig, stage: str, round: int, parent_round: int | None,
                   uri: str, sha: str, started: str, rows: dict, metrics: dict,
                   manifest_hash: str | None = None) -> LineageRecord:
    """The stage's lineage record; `manifest_hash` of the target files it saw (default: the
    target as it is now)."""
    from storage.lineage import package_provenance

    version, commit = package_provenance()
    return LineageRecord(
        stage=stage, round=round, parent_round=parent_round, checkpoint_uri=uri,
        checkpoint_sha256=sha, config=cfg.model_dump(mode="json", exclude={"workspace"}),
        package_version=version,
        git_commit=commit,
        dataset_manifest_hash=manifest_hash or data_plan(cfg).target_manifest_hash(),
        gate_threshold=cfg.self_training.gate_threshold if stage != "stage_one" else None,
        started_at=started, ended_at=utc_now(), status="completed", row_counts=rows,
        metrics=metrics)


def train_summary(cfg: RunConfig, round: int) -> dict:
    """{"steps", "loss"} of the last logged step of round `round`'s training on this machine
    (stage one or retraining; from its training log), {} when it did not train here."""
    log = read_train_log(local_dir(cfg, f"round={round:03d}", "train"))
    return {"steps": log[-1]["step"], "loss": log[-1]["loss"]} if log else {}
