"""Regions of a probability map and the confidence gate.

A region is one connected component (4-connectivity) of one class in the argmax map of a
softmax probability map. Its confidence is the mean of the per-pixel max probability inside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from ovseg_core.constants import PAPER_GATE

DEFAULT_GATE = PAPER_GATE
"""Regions with confidence strictly above this become SAM prompts (method.md)."""


@dataclass
class Region:
    """One connected region of one class.

    class_id: index into the vocabulary (channel of the probability map).
    mask: (H, W) bool, True inside the region.
    confidence: mean per-pixel max probability inside the region, in [0, 1].
    area: number of pixels in `mask`.
    bbox: (x0, y0, x1, y1) pixel box, XYXY, inclusive-exclusive: the region's pixels satisfy
        x0 <= x < x1 and y0 <= y < y1 (so x1 - x0 is the box width in pixels).
    """

    class_id: int
    mask: np.ndarray
    confidence: float
    area: int
    bbox: tuple[int, int, int, int]


def as_numpy_probs(probs: np.ndarray | torch.Tensor) -> np.ndarray:
    """(N, H, W) probabilities as a float32 numpy array (detached, on the CPU)."""
    if isinstance(probs, torch.Tensor):
        probs = probs.detach().float().cpu().numpy()
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 3:
        raise ValueError(f"probs must be (N, H, W), got shape {probs.shape}")
    return probs


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """XYXY inclusive-exclusive box of a non-empty (H, W) bool mask."""
    rows, cols = around(mask, 0)
    return cols.start, rows.start, cols.stop, rows.stop


def around(mask: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    """(rows, cols) of the box of (H, W) bool `mask` grown by `margin` px on each side, clipped
    to the image; None when the mask is empty. Distance transforms of a large image's small
    region run on this window (a 12-megapixel photo's regions: `benchmarks/bench_refine_large.py`).
    """
    ys = np.flatnonzero(mask.any(axis=1))
    if ys.size == 0:
        return None
    xs = np.flatnonzero(mask.any(axis=0))
    return (slice(max(int(ys[0]) - margin, 0), min(int(ys[-1]) + 1 + margin, mask.shape[0])),
            slice(max(int(xs[0]) - margin, 0), min(int(xs[-1]) + 1 + margin, mask.shape[1])))


def find_regions(probs: np.ndarray | torch.Tensor, min_area: int = 16) -> list[Region]:
    """Connected components of each class in the argmax map of `probs`.

    probs: (N, H, W) softmax probabilities (numpy or torch).
    min_area: components with fewer pixels are dropped (they make poor prompts).
    Returns regions ordered by class id, then by component label (row-major first pixel).
    """
    probs = as_numpy_probs(probs)
    argmax = probs.argmax(axis=0)
    maxprob = probs.max(axis=0)
    regions: list[Region] = []
    for class_id in np.unique(argmax):
        labels, count = ndimage.label(argmax == class_id)
        if count == 0:
            continue
        index = np.arange(1, count + 1)
        areas = ndimage.sum_labels(np.ones_like(maxprob), labels, index)
        sums = ndimage.sum_labels(maxprob, labels, index)
        slices = ndimage.find_objects(labels)
        for k, (area, total, sl) in enumerate(zip(areas, sums, slices, strict=True), start=1):
            if area < min_area:
                continue
            mask = labels == k
            bbox = (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
            regions.append(Region(class_id=int(class_id), mask=mask,
                                  confidence=float(total / area), area=int(area),
                                  bbox=tuple(int(v) for v in bbox)))
    return regions


def gate(regions: list[Region], threshold: float | Sequence[float] = DEFAULT_GATE) -> list[bool]:
    """The confidence gate: True where `region.confidence > threshold` (strictly).

    threshold: one value for every class, or one per class id (per-class gates, so a rare or
    hard class is not starved by a bar set for the easy ones).
    """
    return [r.confidence > threshold_of(threshold, r.class_id) for r in regions]


def threshold_of(threshold: float | Sequence[float], class_id: int) -> float:
    """The gate of class `class_id` under a global or per-class `threshold`."""
    return float(threshold) if isinstance(threshold, int | float) else float(threshold[class_id])


def class_balanced_gates(class_ids: Sequence[int], confidences: Sequence[float], quantile: float,
                         caps: float | Sequence[float], num_classes: int) -> list[float]:
    """Per-class gates of a class-balanced gate (CBST-style): class c's gate is the `quantile`
    of its regions' confidences (linear interpolation between order statistics, as numpy's
    default and DuckDB's `quantile_cont`), never above its cap (the global or per-class gate);
    a class without regions keeps its cap.

    class_ids, confidences: one entry per region of the calibration images. Returns
    `num_classes` thresholds; with them a rare class's best regions still pass the gate
    (`gate`, strictly above).
    """
    ids = np.asarray(class_ids, dtype=np.int64)
    conf = np.asarray(confidences, dtype=np.float64)
    out = []
    for c in range(num_classes):
        cap = threshold_of(caps, c)
        mine = conf[ids == c]
        out.append(min(cap, float(np.quantile(mine, quantile))) if mine.size else cap)
    return out
