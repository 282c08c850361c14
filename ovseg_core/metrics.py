"""Semantic segmentation metrics from a confusion matrix: mIoU, per-class IoU, seen/unseen split.

Pixels whose ground truth is IGNORE_INDEX are excluded. All percentages are in [0, 100].

Which classes count (`ConfusionMatrix.compute(seen, rule=...)`):

- `"gt_present"` (default, detectron2's SemSegEvaluator today): a class counts only when it has
  at least one ground-truth pixel. A class absent from the ground truth has IoU None in
  `per_class` and is left out of every mean, even when it was predicted (its false positives
  still lower the IoU of the classes whose pixels they took).
- `"union"` (detectron2 in 2021): a class counts when the ground truth or the predictions hold
  it, so a class predicted but absent from the ground truth counts with IoU 0.

In both rules a class absent from both has IoU None.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ovseg_core.constants import IGNORE_INDEX

RULES = ("gt_present", "union")
"""The names `ConfusionMatrix.compute` accepts for `rule`; the first is the default."""


class ConfusionMatrix:
    """Accumulates `counts[gt, pred]` (int64 (N, N)) over images."""

    def __init__(self, num_classes: int, class_names: Sequence[str] | None = None):
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names is not None else None
        self.counts = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, pred, gt) -> None:
        """Add one image or a batch: `pred`, `gt` int arrays (H, W) or (B, H, W) (numpy or torch).

        `gt` may hold IGNORE_INDEX; `pred` must hold ids in [0, N).
        """
        pred, gt = _as_numpy(pred).astype(np.int64), _as_numpy(gt).astype(np.int64)
        if pred.shape != gt.shape:
            raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
        valid = gt != IGNORE_INDEX
        n = self.num_classes
        gt_v, pred_v = gt[valid], pred[valid]
        if gt_v.size and (gt_v.min() < 0 or gt_v.max() >= n):
            bad = np.unique(gt_v[(gt_v < 0) | (gt_v >= n)])[:5]
            raise ValueError(f"ground truth ids outside [0, {n}): {bad}")
        if pred_v.size and (pred_v.min() < 0 or pred_v.max() >= n):
            raise ValueError(f"predicted ids outside [0, {n})")
        self.counts += np.bincount(gt_v * n + pred_v, minlength=n * n).reshape(n, n)

    def iou(self, rule: str = "gt_present") -> np.ndarray:
        """float64 (N,) IoU in [0, 1]; NaN for a class that does not count under `rule` (RULES)."""
        _check_rule(rule)
        tp = np.diag(self.counts).astype(np.float64)
        gt_pixels = self.counts.sum(1)
        union = gt_pixels + self.counts.sum(0) - tp
        counted = gt_pixels > 0 if rule == "gt_present" else union > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counted, tp / union, np.nan)

    def compute(self, seen: Sequence[bool] | None = None, rule: str = "gt_present") -> dict:
        """{"miou", "per_class", "seen_miou", "unseen_miou", "pixel_acc", "rule"}, in percent.

        rule: which classes count (module docstring): "gt_present" (default) or "union".
        per_class maps the class name (or id) to its IoU in percent, None when the class does
        not count under `rule`. seen: one bool per class; seen_miou / unseen_miou are None
        without it or without a counted class in the group. pixel_acc: correct / non-ignored
        pixels, None without pixels.
        """
        iou = self.iou(rule)
        keys = self.class_names or list(range(self.num_classes))
        total = self.counts.sum()
        result = {
            "miou": _mean_percent(iou),
            "per_class": {
                k: (None if np.isnan(v) else float(100 * v)) for k, v in zip(keys, iou, strict=True)
            },
            "seen_miou": None,
            "unseen_miou": None,
            "pixel_acc": float(100 * np.trace(self.counts) / total) if total else None,
            "rule": rule,
        }
        if seen is not None:
            mask = np.asarray(seen, dtype=bool)
            if mask.shape != (self.num_classes,):
                raise ValueError(f"seen has {mask.size} entries for {self.num_classes} classes")
            result["seen_miou"] = _mean_percent(iou[mask])
            result["unseen_miou"] = _mean_percent(iou[~mask])
        return result


def _check_rule(rule: str) -> None:
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; use one of {', '.join(RULES)}")


def format_table(result: dict) -> str:
    """A plain-text table of per-class IoU and the summary numbers (percent)."""
    per_class = result["per_class"]
    width = max([len(str(k)) for k in per_class] + [10])
    lines = [f"{'class':<{width}}  IoU %"]
    for name, value in per_class.items():
        lines.append(f"{str(name):<{width}}  {'-' if value is None else f'{value:6.2f}'}")
    lines.append("")
    for key in ("miou", "seen_miou", "unseen_miou", "pixel_acc"):
        value = result.get(key)
        if value is not None:
            lines.append(f"{key:<{width}}  {value:6.2f}")
    return "\n".join(lines)


def _mean_percent(values: np.ndarray) -> float | None:
    present = values[~np.isnan(values)]
    return float(100 * present.mean()) if present.size else None


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)
