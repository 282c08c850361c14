"""`ovseg_core.selftrain.polygon_labels` redraws exact labels as polygons: a square with a
square hole comes back exactly at tolerance 0 (even-odd filling keeps the hole), with 4 + 4
vertices once simplified, and a class drawn later (smaller) stays on top of a larger one."""

import numpy as np

from ovseg_core.selftrain.polygon_labels import polygon_label, polygon_mask


def ring() -> np.ndarray:
    mask = np.zeros((40, 40), bool)
    mask[5:35, 5:35] = True
    mask[15:25, 15:25] = False
    return mask


def test_square_with_hole_survives_and_simplifies_to_eight_vertices():
    exact, _ = polygon_mask(ring(), 0.0)
    assert (exact == ring()).all()  # contours on the half-pixel edges, pixel centres filled
    assert not exact[20, 20] and exact[10, 10]
    simple, vertices = polygon_mask(ring(), 1.0)
    assert sorted(vertices) == [4, 4]
    assert not simple[20, 20] and simple[10, 10] and not simple[2, 2]


def test_classes_are_drawn_largest_first_and_void_kept():
    label = np.zeros((40, 40), np.uint8)
    label[5:35, 5:35] = 1
    label[15:25, 15:25] = 2  # inside class 1
    label[0, :] = 255
    out, _ = polygon_label(label, [1, 2], 1.0, void=255)
    assert out[20, 20] == 2 and out[10, 10] == 1 and out[2, 2] == 0
    assert (out[0] == 255).all()
