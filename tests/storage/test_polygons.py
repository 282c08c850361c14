"""`storage.polygons`: mask outlines, drawn back by pycocotools, give the (hole-filled) mask."""

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from scipy import ndimage

from storage.polygons import MIN_PART_AREA, SIMPLIFY_TOLERANCE, mask_polygons

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools")

H, W = 40, 48
ROWS, COLS = np.mgrid[:H, :W]


def disk(cy, cx, radius) -> np.ndarray:
    return (ROWS + 0.5 - cy) ** 2 + (COLS + 0.5 - cx) ** 2 <= radius**2


def rectangle() -> np.ndarray:
    return (ROWS >= 5) & (ROWS < 15) & (COLS >= 8) & (COLS < 30)


def l_shape() -> np.ndarray:  # reaches the bottom and right borders of the image
    return ((ROWS >= 10) & (COLS >= 30)) | ((ROWS >= 30) & (COLS >= 5))


SHAPES = {
    "rectangle": (rectangle, 1),
    "l-shape": (l_shape, 1),
    "disk": (lambda: disk(20, 24, 12), 1),
    "two blobs": (lambda: disk(10, 10, 6) | disk(28, 36, 8), 2),
    "ring": (lambda: disk(20, 24, 14) & ~disk(20, 24, 7), 1),
    "corner to corner": (lambda: ((ROWS < 5) & (COLS < 5)) | ((ROWS >= 5) & (ROWS < 10) &
                                                         (COLS >= 5) & (COLS < 10)), 2),
}


def draw(polygons: list[np.ndarray]) -> np.ndarray:
    """Boolean `(H, W)` union of XY pixel polygons, rasterized by pycocotools."""
    rles = mask_utils.frPyObjects([p.ravel().tolist() for p in polygons], H, W)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / (a | b).sum()


def distance_to_ring(points: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """`(N,)` distances of XY points to the closed polyline `ring` `(K, 2)`."""
    a, b = ring, np.roll(ring, -1, axis=0)
    t = np.clip(np.einsum("nkd,kd->nk", points[:, None] - a, b - a) / np.sum((b - a) ** 2, 1),
                0, 1)
    nearest = a + t[..., None] * (b - a)
    return np.linalg.norm(points[:, None] - nearest, axis=2).min(axis=1)


@pytest.mark.parametrize("name", SHAPES)
def test_polygons_draw_back_to_the_hole_filled_mask(name):
    make, parts = SHAPES[name]
    mask = make()
    filled = ndimage.binary_fill_holes(mask)
    exact = mask_polygons(mask, tolerance=0.0)
    simplified = mask_polygons(mask)
    assert len(exact) == len(simplified) == parts
    np.testing.assert_array_equal(draw(exact), filled)  # the exact pixel outline
    assert iou(draw(simplified), filled) >= 0.9
    for outline, polygon in zip(exact, simplified, strict=True):
        assert 3 <= len(polygon) <= len(outline)
        assert (polygon >= 0).all() and (polygon <= [W, H]).all()
        assert distance_to_ring(outline, polygon).max() <= SIMPLIFY_TOLERANCE + 1e-9
    if name == "ring":
        assert iou(draw(simplified), mask) < 0.8  # the hole is filled, not kept


def test_a_rectangle_is_its_four_corners():
    (polygon,) = mask_polygons(rectangle())
    assert sorted(map(tuple, polygon.tolist())) == [(8, 5), (8, 15), (30, 5), (30, 15)]


def test_staircases_are_simplified():
    (outline,) = mask_polygons(disk(20, 24, 12), tolerance=0.0)
    (polygon,) = mask_polygons(disk(20, 24, 12))
    assert len(polygon) <= len(outline) // 3


def test_specks_and_slivers_give_no_polygon():
    mask = np.zeros((H, W), dtype=bool)
    mask[1, 1:MIN_PART_AREA] = True  # a speck: one pixel short of the minimum area
    mask[10, 2:40] = True  # a one-pixel line: its outline simplifies to two points
    mask[20:22, 20:22] = True  # 2 x 2 = MIN_PART_AREA pixels: kept
    assert [len(p) for p in mask_polygons(mask)] == [4]
    assert len(mask_polygons(mask, tolerance=0.0)) == 2  # the line's exact outline stays


@pytest.mark.parametrize("seed", range(4))
def test_random_masks_trace_exactly(seed):
    """Noise: many parts, diagonal contacts, holes, specks and shapes against the border."""
    rng = np.random.default_rng(seed)
    mask = ndimage.binary_opening(rng.random((H, W)) < 0.55) | (rng.random((H, W)) < 0.05)
    labels, _ = ndimage.label(ndimage.binary_fill_holes(mask))
    sizes = np.bincount(labels.ravel())
    expected = (labels > 0) & (sizes[labels] >= MIN_PART_AREA)
    polygons = mask_polygons(mask, tolerance=0.0)
    assert len(polygons) == int((sizes[1:] >= MIN_PART_AREA).sum())
    np.testing.assert_array_equal(draw(polygons), expected)
