"""The steps of a run as plain functions over (config, references) -> small dicts.

Prefect tasks in `flows.tasks` wrap these one to one; tests call them directly too. Each step
writes its result to the store itself and is idempotent: what the store already holds with a
matching key is skipped, so a re-run after a crash redoes only the missing work.
"""

from __future__ import annotations

import dataclasses
import functools
from functools import cache

from tqdm import tqdm

from flows import training
from flows.clip_weights import clip_metrics, clip_weights, ensure_clip
from flows.config import RunConfig
from flows.faults import kill_point
from flows.plan import data_plan, local_dir, rescan_target, workspace
from flows.quality import round_quality
from ovseg_core.checkpoint import load_model
from ovseg_core.config import preset
from ovseg_core.device import Runtime, pick_runtime
from ovseg_core.errors import OvsegError
from ovseg_core.inference import evaluate
from ovseg_core.labeling import LABELING_VERSION, RoundLabeler, shared_cache, weights_digest
from ovseg_core.launch import TrainJob, launch
from ovseg_core.modeling.build import build_model
from ovseg_core.modeling.sam_encoder import build_sam
from ovseg_core.profiling import phase
from ovseg_core.selftrain import RefinedRegion, SamRefiner
from ovseg_core.selftrain.refiner import RefinerSettings
from ovseg_core.selftrain.regions import class_balanced_gates, threshold_of
from ovseg_core.train import TrainConfig, read_train_log, train
from storage.hashing import config_hash, shard_key
from storage.query import connect
from storage.records import ImageRegions, LineageRecord, RegionRecord, utc_now
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
    if m.sam_checkpoint:
        overrides["sam"] = {"checkpoint": m.sam_checkpoint}
    return preset(m.preset, **overrides)


@cache
def _refiner(variant: str, checkpoint: str | None, device: str, fallback: str) -> SamRefiner:
    """A refiner on real weights: `checkpoint`, else the variant's default file (never random,
    except the `tiny` variant, which has none); a missing file names the setting."""
    parts = build_sam(variant, checkpoint, setting="self_training.refiner_checkpoint")
    for module in (parts.image_encoder, parts.prompt_encoder, parts.mask_decoder):
        module.to(device)
    return SamRefiner(parts, refiner_settings(fallback))


def refiner_settings(fallback: str) -> RefinerSettings:
    """The refiner's measured defaults with the run's fallback for untrusted SAM masks."""
    return dataclasses.replace(RefinerSettings(), fallback=fallback)


def refiner_for(cfg: RunConfig, model) -> tuple[SamRefiner, str]:
    """The SAM refiner of the rounds and the tag of its embeddings cache (its weights)."""
    st = cfg.self_training
    device = str(runtime_for(cfg.device).device)
    if st.refiner_sam == "model" and model.sam is not None:
        return (SamRefiner(model.sam.parts, refiner_settings(st.fallback)),
                f"model:{weights_digest(model.sam)}")
    variant, checkpoint = st.refiner_sam, st.refiner_checkpoint
    if variant == "model":  # DEA off: the model has no SAM encoder, so the refiner brings one
        variant, checkpoint = model.config.sam.variant, model.config.sam.checkpoint
    return _refiner(variant, checkpoint, device, st.fallback), f"{variant}:{checkpoint}"


def labeler_for(cfg: RunConfig, model, thresholds: float | list[float] | None = None
                ) -> RoundLabeler:
    """The round's labeller: the parent model, the target vocabulary, the refiner, the gate
    (`thresholds`, the round's `round_gates`; default the configured `gates`)."""
    refiner, tag = refiner_for(cfg, model)
    names = data_plan(cfg).target_classes
    thresholds = gates(cfg, names) if thresholds is None else thresholds
    return RoundLabeler(model, refiner, names, runtime_for(cfg.device), thresholds,
                        shared_cache(tag))


def gates(cfg: RunConfig, class_names: list[str]) -> float | list[float]:
    """The global gate, or one gate per class where `self_training.class_gates` names some."""
    st = cfg.self_training
    if not st.class_gates:
        return st.gate_threshold
    unknown = sorted(set(st.class_gates) - set(class_names))
    if unknown:
        raise OvsegError(f"self_training.class_gates names classes not in the target "
                         f"vocabulary: {', '.join(unknown)}")
    return [st.class_gates.get(name, st.gate_threshold) for name in class_names]


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
                   on_step=lambda step, _loss: kill_point(f"train_step:0:{step}"))
    ckpt = ws.put_checkpoint(0, str(out))
    metrics = measure(cfg, model, round=0)
    record = lineage_record(cfg, "stage_one", 0, None, ckpt.uri, ckpt.sha256, started,
                            rows={"train_images": len(plan.source), "steps": result.steps},
                            metrics=metrics | clip_metrics(clip))
    ws.write_lineage(record)
    return record.to_dict()


# ---- a self-training round
def shard_plan(cfg: RunConfig, round: int, parent_sha: str) -> list[dict]:
    """The round's shards: image ids and the key that determines each shard's rows. The target
    is scanned afresh, so a round labels the images added since the last one."""
    plan = rescan_target(cfg)
    ids = sorted(set(plan.target.image_ids) | set(plan.target_problems()))
    size = cfg.self_training.shard_size
    thresholds = round_gates(cfg, round, parent_sha)
    settings = config_hash({"model": cfg.model.model_dump(mode="json"),
                            "self_training": cfg.self_training.model_dump(
                                mode="json", exclude={"rounds", "report_images"}),
                            "labeling_version": LABELING_VERSION, "gates": thresholds})
    shards = []
    for k, start in enumerate(range(0, len(ids), size)):
        chunk = ids[start:start + size]
        shards.append({"shard": k, "image_ids": chunk, "gates": thresholds,
                       "key": shard_key(round, k, chunk, parent_sha, settings)})
    return shards


def round_gates(cfg: RunConfig, round: int, parent_sha: str) -> float | list[float]:
    """The round's gate: `gates` (global or per-class), or with `self_training.class_balance`
    the class-balanced gates calibrated on the parent model's regions of the first
    `calibration_images` readable target images (by id; deterministic, so a resumed round gets
    the same gates and keys)."""
    caps, st = gates(cfg, data_plan(cfg).target_classes), cfg.self_training
    if st.class_balance is None:
        return caps
    plan = data_plan(cfg)
    model = load_checkpoint(cfg, round - 1, parent_sha)
    labeler = labeler_for(cfg, model, caps)
    found: list[tuple[int, float]] = []
    ids = sorted(plan.target.image_ids)[:st.calibration_images]
    for start in range(0, len(ids), st.batch_size):
        with phase("data"):
            images, _ = read_images(plan, ids[start:start + st.batch_size])
        if images:
            found += labeler.confidences(list(images.values()))
    return class_balanced_gates([c for c, _ in found], [v for _, v in found], st.class_balance,
                                caps, len(plan.target_classes))


def label_shard(cfg: RunConfig, round: int, shard: dict, parent: dict) -> dict:
    """Infer, gate and refine one shard of target images, then commit it (skip if committed)."""
    ws = workspace(cfg)
    if ws.is_shard_committed(round, shard["shard"], shard["key"]):
        return {"shard": shard["shard"], "skipped": True}
    plan = data_plan(cfg)
    model = load_checkpoint(cfg, parent["round"], parent["checkpoint_sha256"])
    labeler = labeler_for(cfg, model, shard.get("gates"))
    gate, sha = cfg.self_training.gate_threshold, parent["checkpoint_sha256"]
    records, ids = [], shard["image_ids"]
    bar = tqdm(total=len(ids), desc=f"label round {round} shard {shard['shard']}", unit="img")
    for start in range(0, len(ids), cfg.self_training.batch_size):
        batch_ids = ids[start:start + cfg.self_training.batch_size]
        with phase("data"):
            images, problems = read_images(plan, batch_ids)
        labeled = labeler.label(list(images.values()),
                                [f"{plan.target.root}/{i}" for i in images]) if images else []
        regions = dict(zip(images, labeled, strict=True))
        with phase("storage"):
            for i in batch_ids:
                record = ImageRegions(i, 0, 0, gate, sha, problem=problems.get(i))
                if i in images:
                    record = image_regions(i, images[i].shape[:2], regions[i],
                                           plan.target_classes, labeler.threshold, gate, sha)
                records.append(record)
        bar.update(len(batch_ids))
        kill_point(f"inference:{round}:{shard['shard']}")
    bar.close()
    with phase("storage"):
        info = ws.write_shard(round, shard["shard"], shard["key"], records)
    kill_point(f"after_shard_commit:{round}:{shard['shard']}")
    regions = [row for record in records for row in record.regions]
    return {"shard": info.shard, "skipped": False, "rows": info.rows, "images": info.images,
            "unreadable": sum(record.problem is not None for record in records),
            "regions": len(regions), "gated": sum(row.gated for row in regions),
            "refined": sum(row.paints == "refined" for row in regions)}


def read_images(plan, image_ids: list[str]) -> tuple[dict, dict[str, str]]:
    """({id: uint8 (H, W, 3)} of the readable images, {id: reason} of the others): a file that
    cannot be read is quarantined (recorded with its reason), never a failed shard."""
    known = plan.target_problems()
    images, problems = {}, {}
    for image_id in image_ids:
        if image_id in known:
            problems[image_id] = known[image_id]
            continue
        try:
            images[image_id] = plan.read_target(image_id)
        except OvsegError as exc:
            problems[image_id] = str(exc)
    return images, problems


PAINTS = {"sam": "refined", "coarse": "coarse", "none": "none"}
"""RefinedRegion.label_source -> the store's `paints` value."""


def image_regions(image_id: str, size: tuple[int, int], regions: list[RefinedRegion],
                  class_names: list[str], gates: float | list[float], image_gate: float,
                  checkpoint_sha: str) -> ImageRegions:
    """The store's record of one image's regions (core -> storage, numpy only). SAM's mask is
    kept whether trusted or not; `accepted` = trusted; `paints` = what paints the map; each row
    records the gate of its class (`gates`: one for all, or one per class id), the image the
    run's global gate."""
    rows = [RegionRecord(class_id=r.region.class_id, class_name=class_names[r.region.class_id],
                         confidence=r.region.confidence, gated=r.gated, sam_iou=r.sam_iou,
                         agreement_iou=r.agreement_iou, accepted=r.accepted,
                         paints=PAINTS[r.label_source], coarse_mask=r.region.mask,
                         refined_mask=r.refined_mask, bbox=r.region.bbox,
                         gate_threshold=threshold_of(gates, r.region.class_id))
            for r in regions]
    return ImageRegions(image_id=image_id, height=size[0], width=size[1],
                        gate_threshold=image_gate, checkpoint_sha256=checkpoint_sha,
                        regions=rows)


def commit_round(cfg: RunConfig, round: int, count: int) -> None:
    """Mark the round's `count` shards as one committed round (idempotent)."""
    workspace(cfg).commit_round(round, count)


def redo_round(cfg: RunConfig, round: int) -> None:
    """Forget everything round `round` produced so the next run recomputes it."""
    import shutil

    workspace(cfg).redo_round(round)
    shutil.rmtree(local_dir(cfg, f"round={round:03d}"), ignore_errors=True)


def check_quality(cfg: RunConfig, round: int) -> None:
    """The quality gate: OvsegError, before any retraining, when too few gated regions have a
    SAM mask that is trusted (a bad round must not poison the next model)."""
    floor = cfg.self_training.min_trusted_share
    if floor <= 0:
        return
    counts = round_counts(workspace(cfg), round)
    share = counts["accepted"] / counts["gated"] if counts["gated"] else 0.0
    if share < floor:
        raise OvsegError(
            f"round {round} stopped by the quality gate: {counts['accepted']} of "
            f"{counts['gated']} gated regions ({100 * share:.0f}%) have a trusted SAM mask, "
            f"below self_training.min_trusted_share = {floor}. Its rows are committed: inspect "
            f"them with ovseg sql, then change the settings and run --redo-round {round}")


def retrain(cfg: RunConfig, round: int, parent: dict) -> dict:
    """Retrain from the parent checkpoint on the round's selected pseudo-labels; store it."""
    ws = workspace(cfg)
    stored = ws.checkpoint(round)
    if stored is not None:
        return {"uri": stored.uri, "sha256": stored.sha256}
    check_quality(cfg, round)
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
                  runtime_for(cfg.device), on_step=on_step)
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
        result = evaluate(model, plan.source_val, runtime, progress=False)
        metrics["source_val_miou"] = result["miou"]
    if plan.target_eval is not None:  # in the labelled dataset's own vocabulary and ids
        names = plan.target_eval.class_names
        result = evaluate(model, plan.target_eval, runtime, progress=False,
                          seen=plan.seen(names))
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
        quality = round_quality(con, round, data_plan(cfg))
    record = lineage_record(cfg, "self_training_round", round, round - 1, ckpt["uri"],
                            ckpt["sha256"], started, rows=rows,
                            metrics=measure(cfg, model, round) | quality)
    workspace(cfg).write_lineage(record)
    return record.to_dict()


def lineage_record(cfg: RunConfig, stage: str, round: int, parent_round: int | None,
                   uri: str, sha: str, started: str, rows: dict, metrics: dict) -> LineageRecord:
    from storage.lineage import package_provenance

    version, commit = package_provenance()
    return LineageRecord(
        stage=stage, round=round, parent_round=parent_round, checkpoint_uri=uri,
        checkpoint_sha256=sha, config=cfg.model_dump(mode="json", exclude={"workspace"}),
        package_version=version,
        git_commit=commit, dataset_manifest_hash=data_plan(cfg).target_manifest_hash(),
        gate_threshold=cfg.self_training.gate_threshold if stage != "stage_one" else None,
        started_at=started, ended_at=utc_now(), status="completed", row_counts=rows,
        metrics=metrics)


def train_summary(cfg: RunConfig, round: int) -> dict:
    """{"steps", "loss"} of the last logged step of round `round`'s training on this machine
    (stage one or retraining; from its training log), {} when it did not train here."""
    log = read_train_log(local_dir(cfg, f"round={round:03d}", "train"))
    return {"steps": log[-1]["step"], "loss": log[-1]["loss"]} if log else {}
