"""Exact labels redrawn as polygons, as a person with a polygon tool would draw them.

`studies/polygon_labels.py` uses them to tell whether a polygon label, by itself, turns SAM's
refinement gain into a loss.
"""

from __future__ import annotations

import numpy as np


def polygon_mask(mask: np.ndarray, tolerance: float) -> tuple[np.ndarray, list[int]]:
    """(H, W) bool: `mask`'s contours simplified to polygons within `tolerance` px, filled by
    the even-odd rule (holes stay holes); and each polygon's vertex count."""
    from skimage.draw import polygon2mask
    from skimage.measure import approximate_polygon, find_contours

    padded = np.pad(mask.astype(np.float32), 1)  # contours at the border close
    canvas = np.zeros(mask.shape, bool)
    vertices = []
    for contour in find_contours(padded, 0.5):  # (K, 2) row, col; on half-pixel edges
        polygon = approximate_polygon(contour - 1, tolerance) if tolerance > 0 else contour - 1
        if len(polygon) < 4:  # a closed polygon repeats its first point
            continue
        canvas ^= polygon2mask(mask.shape, polygon)  # pixel centres inside the polygon
        vertices.append(len(polygon) - 1)
    return canvas, vertices


def polygon_label(label: np.ndarray, classes: list[int], tolerance: float, void: int,
                  ) -> tuple[np.ndarray, list[int]]:
    """(H, W) uint8: `label` with each class in `classes` redrawn as polygons (largest class
    first, so smaller ones are drawn over it), 0 elsewhere and `void` where `label` is void;
    and the vertex counts of all polygons."""
    out = np.zeros_like(label)
    vertices = []
    for c in sorted(classes, key=lambda c: -int((label == c).sum())):
        mask, v = polygon_mask(label == c, tolerance)
        out[mask] = c
        vertices += v
    out[label == void] = void
    return out, vertices
