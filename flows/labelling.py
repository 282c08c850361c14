"""A round's labelling as steps: its plan (shards and gates), one shard labelled and committed.

The refiner and the labeller are built here from the run's settings (`ovseg_core.labeling`
does the model work) and kept in the process's resources (`flows.context.WorkerResources`);
`flows.steps` holds the rest of a run (stage one, retraining, measuring, lineage).
"""

from __future__ import annotations

import dataclasses
from functools import partial

from flows.config import RunConfig, SelfTrainingSettings
from flows.context import TaskContext
from flows.faults import kill_point
from flows.records import Gates, LabelledShard, ParentRef, RoundPlan, ShardPlan
from flows.steps import parent_ref
from ovseg_core.config import ClipConfig
from ovseg_core.data.prefetch import read_ahead
from ovseg_core.errors import OvsegError
from ovseg_core.labeling import LABELING_VERSION, EmbeddingCache, RoundLabeler, weights_digest
from ovseg_core.modeling.clip_encoder import build_open_clip, open_clip_config
from ovseg_core.modeling.sam_encoder import build_sam
from ovseg_core.profiling import phase
from ovseg_core.progress import Progress, step_name
from ovseg_core.selftrain import RefinedRegion, SamRefiner
from ovseg_core.selftrain.refiner import RefinerSettings
from ovseg_core.selftrain.regions import class_balanced_gates, threshold_of
from ovseg_core.selftrain.verify import ClipVerifier
from storage.hashing import config_hash, shard_key
from storage.records import ImageRegions, RegionRecord
from storage.terms import REFINED


# ---- the refiner and the labeller (kept per process)
def build_refiner(variant: str, checkpoint: str | None, device: str, fallback: str,
                  prompts_per_pass: int | None) -> SamRefiner:
    """A refiner on real weights: `checkpoint`, else the variant's default file (never random,
    except the `tiny` variant, which has none); a missing file names the setting."""
    parts = build_sam(variant, checkpoint, setting="self_training.refiner_checkpoint")
    for module in (parts.image_encoder, parts.prompt_encoder, parts.mask_decoder):
        module.to(device)
    return SamRefiner(parts, refiner_settings(fallback, prompts_per_pass))


def refiner_settings(fallback: str, prompts_per_pass: int | None) -> RefinerSettings:
    """The refiner's measured defaults with the run's fallback for untrusted SAM masks and its
    prompts per decoder pass (`self_training.fallback`, `.prompts_per_pass`)."""
    return dataclasses.replace(RefinerSettings(), fallback=fallback, max_prompts=prompts_per_pass)


def refiner_for(ctx: TaskContext, model) -> tuple[SamRefiner, str]:
    """The SAM refiner of the rounds and the tag of its embeddings cache (its weights); a
    refiner on a weights file is built once per process."""
    st = ctx.cfg.self_training
    device = str(ctx.runtime.device)
    if st.refiner_sam == "model" and model.sam is not None:
        return (SamRefiner(model.sam.parts, refiner_settings(st.fallback, st.prompts_per_pass)),
                f"model:{weights_digest(model.sam)}")
    variant, checkpoint = st.refiner_sam, st.refiner_checkpoint
    if variant == "model":  # DEA off: the model has no SAM encoder, so the refiner brings one
        variant, checkpoint = model.config.sam.variant, model.config.sam.checkpoint
    args = (variant, checkpoint, device, st.fallback, st.prompts_per_pass)
    refiner = ctx.resources.once(("refiner", *args), lambda: build_refiner(*args))
    return refiner, f"{variant}:{checkpoint}"


def labeler_for(ctx: TaskContext, model, thresholds: Gates | None = None) -> RoundLabeler:
    """The round's labeller: the parent model, the target vocabulary, the refiner, the gate
    (`thresholds`, the round's planned gates; default the configured `gates`), CLIP's check.
    The refiner's embeddings are kept per process and refiner, so a run of several rounds
    encodes each target image once."""
    refiner, tag = refiner_for(ctx, model)
    names = ctx.plan.target_classes
    thresholds = gates(ctx.cfg.self_training, names) if thresholds is None else thresholds
    cache = ctx.resources.once(("embeddings", tag), EmbeddingCache)
    return RoundLabeler(model, refiner, names, ctx.runtime, thresholds, cache,
                        verifier_for(ctx, model, names))


def verifier_for(ctx: TaskContext, model, class_names: list[str]) -> ClipVerifier | None:
    """CLIP's check of the gated regions (`self_training.clip_verify`), by the CLIP weights
    file the model started from (built once per process); None when it is off (by default:
    when the CLIP is random)."""
    weights = model.config.clip.pretrained
    if not ctx.resolved.clip_verify:
        return None
    if weights is None:
        raise OvsegError("self_training.clip_verify is on but the model's CLIP is random "
                         "(set model.clip_weights, or clip_verify: false)")
    args = (model.config.clip.model_name, str(weights), tuple(class_names),
            str(ctx.runtime.device))
    return ctx.resources.once(("verifier", *args), lambda: build_verifier(*args))


def build_verifier(model_name: str, weights: str, class_names: tuple[str, ...], device: str
                   ) -> ClipVerifier:
    """A verifier on the CLIP weights file `weights`."""
    clip = build_open_clip(ClipConfig(model_name=model_name, pretrained=weights))
    size = open_clip_config(model_name)["vision_cfg"]["image_size"]
    size = size if isinstance(size, int) else max(size)
    return ClipVerifier.from_clip(clip, class_names, size).to(device)


def gates(st: SelfTrainingSettings, class_names: list[str]) -> float | list[float]:
    """The global gate, or one gate per class where `st.class_gates` names some."""
    if not st.class_gates:
        return st.gate_threshold
    unknown = sorted(set(st.class_gates) - set(class_names))
    if unknown:
        raise OvsegError(f"self_training.class_gates names classes not in the target "
                         f"vocabulary: {', '.join(unknown)}")
    return [st.class_gates.get(name, st.gate_threshold) for name in class_names]


# ---- the plan of a round
def plan_round(ctx: TaskContext, round: int) -> RoundPlan:
    """The round's plan: its parent, its gates, its shards (image ids and the key that
    determines each shard's rows).

    The plan (image ids, gates) is fixed when the round starts and recorded in the store, so a
    resumed round labels the images it started with; images added since then wait for the next
    round. A new round scans the target afresh, so it labels the images added since the last.
    OvsegError when the round started from another parent or with other settings (redo it).
    """
    parent = parent_ref(ctx.store, round)
    basis = plan_basis(ctx.cfg, parent.checkpoint_sha256)
    stored = ctx.store.round_plan(round)
    if stored is None:
        ids = ctx.rescan().target_ids()
        stored = ctx.store.put_round_plan(round, {"basis": basis, "image_ids": ids,
                                                  "gates": round_gates(ctx, round, parent)})
    if stored["basis"] != basis:
        from flows.invocation import ovseg_command

        raise OvsegError(f"round {round} was started from another parent checkpoint or with "
                         f"other labelling settings; redo it ({ovseg_command()} run "
                         f"--redo-round {round})")
    gates_ = stored["gates"]
    gates_ = tuple(gates_) if isinstance(gates_, list) else gates_
    return RoundPlan(round, parent, basis, gates_,
                     shard_plans(round, parent, basis, gates_, stored["image_ids"],
                                 ctx.cfg.self_training.shard_size))


def shard_plans(round: int, parent: ParentRef, basis: str, gates_: Gates, ids: list[str],
                size: int) -> tuple[ShardPlan, ...]:
    """The round's images in shards of `size`, each keyed by what determines its rows."""
    settings = config_hash({"basis": basis, "gates": gates_})
    shards = []
    for k, start in enumerate(range(0, len(ids), size)):
        chunk = tuple(ids[start:start + size])
        shards.append(ShardPlan(round, k, chunk, gates_,
                                shard_key(round, k, chunk, parent.checkpoint_sha256, settings)))
    return tuple(shards)


def plan_basis(cfg: RunConfig, parent_sha: str) -> str:
    """Hash of what shapes a round's rows besides its images and gates: the parent checkpoint,
    the model and self-training settings (not rounds, report pictures, loader workers,
    prompts per pass or the control, which do not change the rows) and
    the labelling code's version."""
    return config_hash({"parent": parent_sha, "model": cfg.model.model_dump(mode="json"),
                        "self_training": cfg.self_training.model_dump(
                            mode="json", exclude={"rounds", "report_images", "control",
                                                  "loader_workers", "prompts_per_pass"}),
                        "labeling_version": LABELING_VERSION})


def round_gates(ctx: TaskContext, round: int, parent: ParentRef) -> float | list[float]:
    """The round's gate: `gates` (global or per-class), or with `self_training.class_balance`
    the class-balanced gates calibrated on the parent model's regions of the first
    `calibration_images` readable target images (by id). Computed once, when the round
    plans; a resumed round reads them from its plan."""
    plan, st = ctx.plan, ctx.cfg.self_training
    caps = gates(st, plan.target_classes)
    if st.class_balance is None:
        return caps
    model = ctx.load_checkpoint(parent.round, parent.checkpoint_sha256)
    labeler = labeler_for(ctx, model, caps)
    found: list[tuple[int, float]] = []
    ids = sorted(plan.target.image_ids)[:st.calibration_images]
    for start in range(0, len(ids), st.batch_size):
        with phase("data"):
            images, _ = read_images(plan, ids[start:start + st.batch_size])
        if images:
            found += labeler.confidences(list(images.values()))
    return class_balanced_gates([c for c, _ in found], [v for _, v in found], st.class_balance,
                                caps, len(plan.target_classes))


# ---- one shard
def label_shard(ctx: TaskContext, shard: ShardPlan, parent: ParentRef) -> LabelledShard:
    """Infer, gate and refine one shard of target images, then commit it (skip if committed)."""
    round, store = shard.round, ctx.store
    if store.is_shard_committed(round, shard.shard, shard.key):
        return LabelledShard(round, shard.shard, skipped=True)
    plan, st = ctx.plan, ctx.cfg.self_training
    model = ctx.load_checkpoint(parent.round, parent.checkpoint_sha256)
    labeler = labeler_for(ctx, model, shard.gates)
    gate, sha = st.gate_threshold, parent.checkpoint_sha256
    records, ids, size = [], list(shard.image_ids), st.batch_size
    batches = [ids[start:start + size] for start in range(0, len(ids), size)]
    loaded = read_ahead(partial(read_images, plan), batches, ctx.resolved.loader_workers)
    bar = Progress(len(ids), step_name(round, f"label and refine (shard {shard.shard})"),
                   "images")
    for batch_ids in batches:
        with phase("data"):  # with loader workers: the wait for a batch they decoded
            images, problems = next(loaded)
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
        kill_point(f"inference:{round}:{shard.shard}")
    next(loaded, None)  # the end: loader workers shut down now, not when garbage-collected
    bar.close()
    with phase("storage"):
        info = store.write_shard(round, shard.shard, shard.key, records)
    kill_point(f"after_shard_commit:{round}:{shard.shard}")
    regions = [row for record in records for row in record.regions]
    return LabelledShard(round, info.shard, skipped=False, rows=info.rows, images=info.images,
                         unreadable=sum(record.problem is not None for record in records),
                         regions=len(regions), gated=sum(row.gated for row in regions),
                         refined=sum(row.paints == REFINED for row in regions))


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


def image_regions(image_id: str, size: tuple[int, int], regions: list[RefinedRegion],
                  class_names: list[str], gates: float | list[float], image_gate: float,
                  checkpoint_sha: str) -> ImageRegions:
    """The store's record of one image's regions (core -> storage, numpy only). SAM's mask is
    kept whether trusted or not; `accepted` = trusted; `paints` = what paints the map (nothing
    when CLIP picked another class, `clip_class_id`); each row
    records the gate of its class (`gates`: one for all, or one per class id), the image the
    run's global gate."""
    rows = [RegionRecord(class_id=r.region.class_id, class_name=class_names[r.region.class_id],
                         confidence=r.region.confidence, gated=r.gated, sam_iou=r.sam_iou,
                         agreement_iou=r.agreement_iou, accepted=r.accepted,
                         paints=r.paints, clip_class_id=r.clip_class,
                         coarse_mask=r.region.mask,
                         refined_mask=r.refined_mask, bbox=r.region.bbox,
                         gate_threshold=threshold_of(gates, r.region.class_id))
            for r in regions]
    return ImageRegions(image_id=image_id, height=size[0], width=size[1],
                        gate_threshold=image_gate, checkpoint_sha256=checkpoint_sha,
                        regions=rows)
