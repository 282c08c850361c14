"""Pseudo-label quality: id matching and the precision-style mIoU / coverage, hand-computed."""

import numpy as np
import pytest

from flows.quality import _score, match_ids
from ovseg_core.constants import IGNORE_INDEX

I = IGNORE_INDEX  # noqa: E741


def test_match_ids_by_path_suffix_only():
    matches = match_ids(["a.png", "sub/b.png", "c.png"],
                        ["images/a.png", "images/sub/b.png", "images/other/c.png", "x/c.png"])
    assert matches == {"a.png": "images/a.png", "sub/b.png": "images/sub/b.png"}


def test_precision_miou_and_coverage_over_painted_pixels():
    gt = np.array([[0, 0, 1, 1], [2, 2, I, 1]], dtype=np.uint16)
    pseudo = np.array([[0, 1, 1, I], [2, I, 0, I]], dtype=np.uint16)
    # painted & labelled pixels: (0,0) 0->0, (0,1) 0->1, (0,2) 1->1, (1,0) 2->2
    # class 0: tp 1, gt 2 (painted only), pred 1 -> 1/2; class 1: tp 1, union 2 -> 1/2; class 2: 1
    out = _score({"x": pseudo, "y": None}, {"x": gt, "y": np.zeros((2, 2), np.uint16)},
                 ["a", "b", "c"], [True, True, False], "pl_")
    assert out["pl_miou"] == pytest.approx((50 + 50 + 100) / 3)
    assert out["pl_seen_miou"] == 50 and out["pl_unseen_miou"] == 100
    # image y is labelled but not painted
    assert out["pl_coverage"] == pytest.approx(100 * 4 / (7 + 4))
