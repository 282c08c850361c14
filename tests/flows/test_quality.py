"""Pseudo-label quality: id matching and the precision-style mIoU / coverage, hand-computed."""

import numpy as np
import pytest

from flows.quality import PaintedScore, match_ids
from ovseg_core.constants import IGNORE_INDEX

IGN = IGNORE_INDEX


def test_match_ids_by_path_suffix_only():
    matches = match_ids(["a.png", "sub/b.png", "c.png"],
                        ["images/a.png", "images/sub/b.png", "images/other/c.png", "x/c.png"])
    assert matches == {"a.png": "images/a.png", "sub/b.png": "images/sub/b.png"}


def test_precision_miou_and_coverage_over_painted_pixels():
    gt = np.array([[0, 0, 1, 1], [2, 2, IGN, 1]], dtype=np.uint16)
    pseudo = np.array([[0, 1, 1, IGN], [2, IGN, 0, IGN]], dtype=np.uint16)
    # painted & labelled pixels: (0,0) 0->0, (0,1) 0->1, (0,2) 1->1, (1,0) 2->2
    # class 0: tp 1, gt 2 (painted only), pred 1 -> 1/2; class 1: tp 1, union 2 -> 1/2; class 2: 1
    score = PaintedScore(["a", "b", "c"])
    score.add(pseudo, gt)
    score.add(None, np.zeros((2, 2), np.uint16))  # labelled, nothing painted
    out = score.result([True, True, False])
    assert out["miou"] == pytest.approx((50 + 50 + 100) / 3)
    assert out["seen_miou"] == 50 and out["unseen_miou"] == 100
    assert out["coverage"] == pytest.approx(100 * 4 / (7 + 4))
