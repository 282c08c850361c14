"""Pseudo-label maps from refined regions."""

from __future__ import annotations

import numpy as np

from ovseg_core.constants import IGNORE_INDEX
from ovseg_core.selftrain.refiner import RefinedRegion


def paint_pseudo_labels(refined: list[RefinedRegion], height: int, width: int) -> np.ndarray:
    """(H, W) uint16 pseudo-label map of one image.

    Each region with a label mask (`RefinedRegion.label_mask`: the accepted SAM mask, or the
    coarse region when the refiner's fallback is "coarse") is painted with its class id. Where
    masks overlap, the highest `RefinedRegion.score` wins: confidence x SAM's predicted IoU for
    a SAM mask, confidence x agreement IoU for a coarse fallback (ties: the later region wins).
    Pixels no label mask covers are IGNORE_INDEX (65535).
    """
    labels = np.full((height, width), IGNORE_INDEX, dtype=np.uint16)
    painted = [r for r in refined if r.label_mask is not None]
    for r in sorted(painted, key=lambda r: r.score):  # stable: ascending, best painted last
        mask = r.label_mask
        if mask.shape != (height, width):
            raise ValueError(f"region mask {mask.shape} does not match the map {(height, width)}")
        labels[mask] = r.region.class_id
    return labels
