"""Regions, the confidence gate and pseudo-label painting on synthetic probability maps."""

import numpy as np
import pytest
import torch

from ovseg_core.constants import IGNORE_INDEX
from ovseg_core.selftrain import RefinedRegion, Region, find_regions, gate, paint_pseudo_labels
from ovseg_core.selftrain.regions import mask_bbox


def two_blob_probs() -> np.ndarray:
    """(3, 20, 30): class 1 has two blobs (p=0.95 and 0.7), class 2 one blob (p=0.8),
    rest class 0."""
    probs = np.zeros((3, 20, 30), np.float32)
    probs[0] = 1.0
    for cls, (y0, y1, x0, x1), p in ((1, (2, 8, 3, 10), 0.95), (1, (12, 18, 3, 7), 0.7),
                                     (2, (5, 15, 15, 27), 0.8)):
        probs[:, y0:y1, x0:x1] = (1 - p) / 2
        probs[cls, y0:y1, x0:x1] = p
    return probs


def test_regions_are_connected_components_with_confidence_area_bbox():
    regions = find_regions(two_blob_probs(), min_area=1)
    by_key = {(r.class_id, r.bbox): r for r in regions}
    assert set(by_key) == {(0, (0, 0, 30, 20)), (1, (3, 2, 10, 8)), (1, (3, 12, 7, 18)),
                           (2, (15, 5, 27, 15))}
    a = by_key[(1, (3, 2, 10, 8))]
    assert a.area == 6 * 7 and a.mask.sum() == 42 and a.mask[2, 3] and not a.mask[8, 3]
    assert a.confidence == pytest.approx(0.95)
    assert by_key[(2, (15, 5, 27, 15))].confidence == pytest.approx(0.8)
    background = by_key[(0, (0, 0, 30, 20))]
    assert background.area == 600 - 42 - 24 - 120 and background.confidence == pytest.approx(1.0)


def test_regions_accept_torch_and_drop_small_components():
    probs = torch.as_tensor(two_blob_probs())
    small = find_regions(probs, min_area=30)
    assert sorted((r.class_id, r.area) for r in small) == [(0, 414), (1, 42), (2, 120)]


def test_mixed_confidence_is_mean_of_max_probability():
    probs = np.zeros((2, 4, 4), np.float32)
    probs[1], probs[0] = 0.6, 0.4
    probs[1, :, :2], probs[0, :, :2] = 1.0, 0.0
    (region,) = find_regions(probs, min_area=1)
    assert region.class_id == 1 and region.confidence == pytest.approx((8 * 1.0 + 8 * 0.6) / 16)


def test_gate_is_strictly_above_threshold():
    regions = [Region(0, np.ones((2, 2), bool), c, 4, (0, 0, 2, 2)) for c in (0.95, 0.9, 0.5)]
    assert gate(regions) == [True, False, False]
    assert gate(regions, threshold=0.4) == [True, True, True]


def test_mask_bbox_is_inclusive_exclusive():
    m = np.zeros((10, 12), bool)
    m[3:7, 2:9] = True
    assert mask_bbox(m) == (2, 3, 9, 7)


def refined(cls, mask, conf, sam_iou, agree, source):
    region = Region(cls, mask, conf, int(mask.sum()), mask_bbox(mask))
    return RefinedRegion(region, True, mask, sam_iou, agree, source == "refined", source)


def test_paint_resolves_overlaps_by_score_and_leaves_ignore():
    a = np.zeros((6, 6), bool)
    a[0:4, 0:4] = True
    b = np.zeros((6, 6), bool)
    b[2:6, 2:6] = True
    c = np.zeros((6, 6), bool)
    c[5, 0] = True
    # score a = 0.95 * 0.8 = 0.76 < score b = 0.92 * 0.9 = 0.828 -> b wins the overlap
    out = paint_pseudo_labels([refined(3, a, 0.95, 0.8, 0.9, "refined"),
                               refined(7, b, 0.92, 0.9, 0.9, "refined"),
                               refined(9, c, 0.99, 0.9, 0.9, "none")], 6, 6)
    assert out.dtype == np.uint16
    assert out[0, 0] == 3 and out[3, 3] == 7 and out[2, 2] == 7 and out[5, 5] == 7
    assert out[5, 0] == IGNORE_INDEX and out[0, 5] == IGNORE_INDEX
    # swap the scores: a wins
    out = paint_pseudo_labels([refined(3, a, 0.95, 0.99, 0.9, "refined"),
                               refined(7, b, 0.92, 0.5, 0.9, "refined")], 6, 6)
    assert out[3, 3] == 3 and out[5, 5] == 7


def test_coarse_fallback_paints_region_and_scores_by_agreement():
    coarse = np.zeros((5, 5), bool)
    coarse[1:4, 1:4] = True
    sam = np.zeros((5, 5), bool)
    sam[0, 0] = True
    region = Region(4, coarse, 0.95, 9, (1, 1, 4, 4))
    r = RefinedRegion(region, True, sam, 0.9, 0.0, False, "coarse")
    assert r.label_mask is coarse and r.score == 0.0
    out = paint_pseudo_labels([r], 5, 5)
    assert (out == 4).sum() == 9 and out[0, 0] == IGNORE_INDEX
    ungated = RefinedRegion(region, False)
    assert (paint_pseudo_labels([ungated], 5, 5) == IGNORE_INDEX).all()


def test_class_balanced_gates_are_capped_class_quantiles_as_duckdb_computes_them():
    import duckdb

    from ovseg_core.selftrain.regions import class_balanced_gates

    ids = [0, 0, 0, 0, 1, 1, 2]
    conf = [0.2, 0.4, 0.6, 0.95, 0.1, 0.3, 0.99]
    got = class_balanced_gates(ids, conf, 0.5, [0.9, 0.9, 0.5, 0.7], num_classes=4)
    # class 0: median of 0.2, 0.4, 0.6, 0.95 = 0.5; class 1: 0.2; class 2: 0.99 capped at 0.5;
    # class 3 has no region and keeps its cap
    assert got == pytest.approx([0.5, 0.2, 0.5, 0.7])
    con = duckdb.connect()
    rows = con.execute("SELECT c, quantile_cont(v, 0.5) FROM (SELECT unnest($1) AS c, "
                       "unnest($2) AS v) GROUP BY c ORDER BY c", [ids, conf]).fetchall()
    assert [min(cap, q) for (_, q), cap in zip(rows, [0.9, 0.9, 0.5], strict=True)] == \
        pytest.approx(got[:3])
    assert class_balanced_gates([], [], 0.5, 0.9, num_classes=2) == [0.9, 0.9]
