"""Pseudo-label quality of a round: the painted label maps measured against the labels of the
target images themselves (which no round trains on).

Where the target images have labels that the rounds never use (`data.target_labels`, as in the
built-in world, or a `data.target_eval` that covers the same images), each image's pseudo-label
map is compared with its ground truth over the pixels the map labels (a precision-style mIoU:
an unlabelled pixel is neither right nor wrong) and its coverage (labelled ground-truth pixels
the map paints) is counted. Two maps per image: "refined", the map retraining uses (the rows of
`self_training.selection`, by default those that paint: SAM's trusted masks of the regions CLIP
agrees with; coarse fallbacks when that setting is on), and "coarse", every gated region's
coarse mask, i.e. what SAM and CLIP were given. Their difference is what SAM and CLIP did for
the pseudo-labels of this round.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from flows.plan import DataPlan
from ovseg_core.constants import IGNORE_INDEX
from ovseg_core.metrics import ConfusionMatrix
from storage.samples import select_images

if TYPE_CHECKING:
    from storage.query import Store

COARSE_SELECTION = "gated"
"""The rows the coarse map is painted from: every gated region (what SAM and CLIP were given)."""


def match_ids(target_ids: list[str], eval_ids: list[str]) -> dict[str, str]:
    """{target image id: eval image id} for the same file: equal ids, or an eval id that ends
    with '/' + the target id (e.g. 'images/a.png' for 'a.png')."""
    by_name: dict[str, list[str]] = {}
    for e in eval_ids:
        by_name.setdefault(e.rsplit("/", 1)[-1], []).append(e)
    matches = {}
    for t in target_ids:
        found = [e for e in by_name.get(t.rsplit("/", 1)[-1], []) if e == t or e.endswith("/" + t)]
        if len(found) == 1:
            matches[t] = found[0]
    return matches


def round_quality(store: Store, round: int, plan: DataPlan, selection: str | None = None
                  ) -> dict:
    """{"pl_refined_miou", "pl_refined_coverage", ..., "pl_coarse_..."} in percent, with seen /
    unseen means and `pl_images`; {} when the target images have no labels to measure them by.
    selection: the SQL WHERE retraining selects rows by (None: the rows that paint).
    """
    scored = painted_scores(store, round, plan, selection)
    if scored is None:
        return {}
    scores, images = scored
    seen = plan.seen(list((plan.target_labels or plan.target_eval).class_names))
    metrics: dict = {"pl_images": images}
    for kind, score in scores.items():
        metrics.update({f"pl_{kind}_{k}": v for k, v in score.result(seen).items()})
    return metrics


def painted_scores(store: Store, round: int, plan: DataPlan, selection: str | None = None
                   ) -> tuple[dict[str, PaintedScore], int] | None:
    """({kind: PaintedScore} of the two maps, "refined" (the rows of `selection`, as retraining
    paints them) and "coarse" (every gated region's coarse mask), images scored), None when the
    target images have no labels.
    A score's `matrix.counts` is the (N, N) pixel confusion, rows: the label's class, columns:
    the painted class.

    One image at a time (its label and its two painted maps), so memory does not grow with the
    round; only the rows' RLE masks of the round are held.
    """
    labels = plan.target_labels or plan.target_eval
    if labels is None or not labels.has_labels:
        return None
    matches = match_ids(list(plan.target.image_ids), list(labels.image_ids))
    if not matches:
        return None
    names = list(labels.class_names)
    lookup = _id_lookup(plan.target_classes, names)
    selections = {"refined": select_images(store, round, selection),
                  "coarse": select_images(store, round, COARSE_SELECTION, coarse=True)}
    scores = {kind: PaintedScore(names) for kind in selections}
    for target_id, eval_id in matches.items():
        gt = labels.read_label(eval_id)
        for kind, images in selections.items():
            chosen = images.get(target_id)
            scores[kind].add(None if chosen is None else lookup[chosen.label_map()], gt)
    return scores, len(matches)


class PaintedScore:
    """Precision-style mIoU and coverage of pseudo-label maps (uint16, IGNORE = unlabelled)
    against ground truth, accumulated image by image."""

    def __init__(self, names: list[str]) -> None:
        self.matrix = ConfusionMatrix(len(names), names)
        self.labelled = self.covered = 0

    def add(self, pseudo: np.ndarray | None, gt: np.ndarray) -> None:
        """One image: pseudo (H, W) or None (nothing painted), gt (H, W) uint16."""
        valid = gt != IGNORE_INDEX
        self.labelled += int(valid.sum())
        if pseudo is None:
            return
        painted = pseudo != IGNORE_INDEX
        self.covered += int((valid & painted).sum())
        self.matrix.update(np.where(painted, pseudo, 0), np.where(painted, gt, IGNORE_INDEX))

    def result(self, seen: list[bool]) -> dict:
        """{"miou", "seen_miou", "unseen_miou", "coverage"} in percent."""
        r = self.matrix.compute(seen=seen)
        coverage = 100.0 * self.covered / self.labelled if self.labelled else None
        return {"miou": r["miou"], "seen_miou": r["seen_miou"], "unseen_miou": r["unseen_miou"],
                "coverage": coverage}


def _id_lookup(pseudo_names: list[str], eval_names: list[str]) -> np.ndarray:
    """uint16 (65536,) map from pseudo-label ids to eval ids by class name (IGNORE if absent)."""
    position = {n: i for i, n in enumerate(eval_names)}
    lookup = np.full(IGNORE_INDEX + 1, IGNORE_INDEX, dtype=np.uint16)
    for i, name in enumerate(pseudo_names):
        lookup[i] = position.get(name, IGNORE_INDEX)
    return lookup
