"""Pseudo-label maps from refined regions, by the store's painting rule (`storage.terms`)."""

from __future__ import annotations

import numpy as np

from ovseg_core.selftrain.refiner import RefinedRegion
from storage.terms import paint_label_map


def paint_pseudo_labels(refined: list[RefinedRegion], height: int, width: int) -> np.ndarray:
    """(H, W) uint16 pseudo-label map of one image.

    Each region with a label mask (`RefinedRegion.label_mask`: the trusted SAM mask, or the
    coarse region when the refiner's fallback is "coarse") is painted with its class id. Where
    masks overlap, the highest `RefinedRegion.score` wins (ties: the later region), as the
    store paints its rows (`storage.terms.paint_label_map`). Pixels no label mask covers are
    IGNORE_INDEX (65535).
    """
    painted = [r for r in refined if r.label_mask is not None]
    return paint_label_map(height, width, np.array([r.region.class_id for r in painted]),
                           np.array([r.score for r in painted], dtype=np.float64),
                           [r.label_mask for r in painted])
