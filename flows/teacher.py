"""How good a teacher the round had: each gated region's true class against the model's class
and CLIP's check of its crop.

Where the target images have labels no round trains on (as in the built-in world), a gated
region's true class is the labelled class covering most of its coarse mask. Per true class:
how many gated regions there were, the share the model named right (the gated regions'
precision) and, of the regions CLIP checked, the share CLIP named right (CLIP's top-1 on the
crops of the round's actual gated regions). Round metrics keep the totals (`teacher_metrics`);
`teacher_table` gives the per-class rows (`studies/selftrain_protocol.py` prints them).
"""

from __future__ import annotations

import numpy as np

from flows.plan import DataPlan
from flows.quality import match_ids
from ovseg_core.constants import IGNORE_INDEX
from storage.rle import decode_masks

ROWS = ("SELECT image_id, class_name, clip_class_id, coarse_rle, image_height, image_width "
        "FROM pseudo_labels WHERE round = ? AND gated ORDER BY image_id, region_id")


def region_truths(con, round: int, plan: DataPlan) -> list[dict] | None:
    """One dict per gated region of round `round`: {"truth", "model", "clip"} class names
    ("clip" None when CLIP did not check it, "truth" None when the region covers no labelled
    pixel); None when the target images have no labels."""
    labels = plan.target_labels or plan.target_eval
    if labels is None or not labels.has_labels:
        return None
    matches = match_ids(list(plan.target.image_ids), list(labels.image_ids))
    names, classes = list(labels.class_names), plan.target_classes
    rows = con.execute(ROWS, [round]).fetchall()
    out, gt_of = [], {}
    for image_id, model_name, clip_id, rle, height, width in rows:
        if image_id not in matches:
            continue
        if image_id not in gt_of:
            gt_of = {image_id: labels.read_label(matches[image_id])}  # rows come by image
        truth = majority(gt_of[image_id], decode_masks([rle], height, width)[0])
        out.append({"truth": None if truth is None else names[truth], "model": model_name,
                    "clip": None if clip_id is None else classes[int(clip_id)]})
    return out


def majority(label: np.ndarray, mask: np.ndarray) -> int | None:
    """The most frequent labelled class id of label uint16 (H, W) under mask bool (H, W)."""
    values = label[mask]
    values = values[values != IGNORE_INDEX]
    if values.size == 0:
        return None
    return int(np.bincount(values.astype(np.int64)).argmax())


def teacher_table(regions: list[dict], class_names: list[str]) -> list[dict]:
    """Per true class (in `class_names` order, classes with gated regions only): {"class",
    "regions", "model_precision", "clip_checked", "clip_top1"}; shares in [0, 1], None when
    there is nothing to divide."""
    table = []
    for name in class_names:
        mine = [r for r in regions if r["truth"] == name]
        if not mine:
            continue
        checked = [r for r in mine if r["clip"] is not None]
        table.append({
            "class": name, "regions": len(mine),
            "model_precision": _share(r["model"] == name for r in mine),
            "clip_checked": len(checked),
            "clip_top1": _share(r["clip"] == name for r in checked)})
    return table


def teacher_metrics(con, round: int, plan: DataPlan) -> dict:
    """Round totals in percent: {"gated_precision", "gated_unseen_precision",
    "clip_region_top1", "clip_region_unseen_top1"} (absent where nothing was measured);
    con: a `storage.query.connect` connection."""
    regions = region_truths(con, round, plan)
    if not regions:
        return {}
    unseen = {n for n, s in zip(plan.target_classes, plan.target_seen, strict=True) if not s}
    parts = {"": regions, "_unseen": [r for r in regions if r["truth"] in unseen]}
    metrics = {}
    for suffix, chosen in parts.items():
        checked = [r for r in chosen if r["clip"] is not None]
        figures = {f"gated{suffix}_precision": _share(r["model"] == r["truth"] for r in chosen),
                   f"clip_region{suffix}_top1": _share(r["clip"] == r["truth"] for r in checked)}
        metrics.update({k: round_pct(v) for k, v in figures.items() if v is not None})
    return metrics


def round_pct(share: float) -> float:
    """A share in [0, 1] as percent, 2 decimals."""
    return round(100.0 * share, 2)


def _share(hits) -> float | None:
    hits = list(hits)
    return sum(hits) / len(hits) if hits else None
