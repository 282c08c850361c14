"""Masks as polygons, for the formats that take outlines: YOLO segmentation labels
(storage.export) and Label Studio pre-annotations (storage.review_export).

Coordinates are XY in pixels, X right and Y down; pixel (r, c) covers [c, c+1) x [r, r+1), so
the image spans [0, W] x [0, H] and integer vertices are pixel corners (COCO's convention:
pycocotools rasterizes such a polygon back to the pixels it encloses).

One polygon per 4-connected part of the mask, its holes filled first: a polygon of these
formats is one ring and cannot hold a hole, so a ring-shaped mask comes out as a disk (and a
part inside another part's hole merges into it). Parts of fewer than `min_area` pixels give no
polygon. A part is traced with contourpy at level 0.5 on the zero-padded mask sampled at pixel
centres; that contour runs through the midpoints of the part's boundary pixel edges and cuts
every corner diagonally, so each cut is replaced by the pixel corner it skips: the result is
the part's exact pixel outline (its area is the part's pixel count). Ramer-Douglas-Peucker
then drops the vertices within `tolerance` pixels of the simplified outline (0 keeps the exact
outline); polygons left with fewer than 3 vertices are dropped.
"""

from __future__ import annotations

import contourpy
import numpy as np
from scipy import ndimage

SIMPLIFY_TOLERANCE = 1.0
"""Pixels a vertex may lie off the simplified outline: pixel staircases become straight edges."""
MIN_PART_AREA = 4
"""Parts of a mask with fewer pixels (holes filled) give no polygon: specks."""


def mask_polygons(mask: np.ndarray, tolerance: float = SIMPLIFY_TOLERANCE,
                  min_area: int = MIN_PART_AREA) -> list[np.ndarray]:
    """Outlines of a boolean `(H, W)` mask: one float `(K, 2)` array of XY pixel coordinates
    (K >= 3, no vertex repeated) per part, see the module docstring."""
    labels, _ = ndimage.label(ndimage.binary_fill_holes(mask))
    polygons = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        part = labels[box] == index
        if part.sum() < min_area:
            continue
        ring = _simplify(_outline(part), tolerance) + [box[1].start, box[0].start]
        if len(ring) >= 3:
            polygons.append(ring)
    return polygons


def _outline(part: np.ndarray) -> np.ndarray:
    """The pixel corners where the outline of a hole-free 4-connected boolean `(h, w)` part
    turns, in order around it: float `(K, 2)` XY in the part's own pixel coordinates."""
    h, w = part.shape
    centres_x, centres_y = np.arange(-1, w + 1) + 0.5, np.arange(-1, h + 1) + 0.5
    generator = contourpy.contour_generator(centres_x, centres_y,
                                            np.pad(part.astype(np.float64), 1),
                                            line_type="Separate")
    (line,) = generator.lines(0.5)  # hole-free and 4-connected: one ring, no saddle
    points = line[:-1]  # a closed line repeats its first point at the end
    following = np.roll(points, -1, axis=0)
    on_vertical_edge = np.abs(points[:, 0] - np.round(points[:, 0])) < 0.25  # integer X
    turns = on_vertical_edge != np.roll(on_vertical_edge, -1)
    corners = np.where(on_vertical_edge[:, None],
                       np.column_stack([points[:, 0], following[:, 1]]),
                       np.column_stack([following[:, 0], points[:, 1]]))
    return np.round(corners[turns])


def _simplify(ring: np.ndarray, tolerance: float) -> np.ndarray:
    """Ramer-Douglas-Peucker on a closed `(K, 2)` ring: keeps its first vertex, the vertex
    farthest from it, and every vertex more than `tolerance` from the chord between the kept
    vertices around it. Returns the kept vertices in order."""
    closed = np.vstack([ring, ring[:1]])
    far = int(np.argmax(np.sum((ring - ring[0]) ** 2, axis=1)))
    keep = np.zeros(len(closed), dtype=bool)
    keep[[0, far]] = True
    spans = [(0, far), (far, len(ring))]
    while spans:
        start, end = spans.pop()
        if end - start < 2:
            continue
        chord = closed[end] - closed[start]
        offsets = closed[start + 1:end] - closed[start]
        distances = np.abs(chord[0] * offsets[:, 1] - chord[1] * offsets[:, 0]) / np.hypot(*chord)
        split = start + 1 + int(np.argmax(distances))
        if distances[split - start - 1] > tolerance:
            keep[split] = True
            spans += [(start, split), (split, end)]
    return ring[keep[:-1]]
