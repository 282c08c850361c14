"""mIoU: hand-computed cases under both rules, an independent computation, seen/unseen split."""

import numpy as np
import pytest
import torch

from ovseg_core.constants import IGNORE_INDEX
from ovseg_core.metrics import ConfusionMatrix, format_table

I = IGNORE_INDEX  # noqa: E741


def test_hand_computed_case():
    gt = np.array([[0, 0, 1, 1],
                   [0, 2, 2, I]])
    pred = np.array([[0, 1, 1, 1],
                     [0, 2, 0, 3]])
    cm = ConfusionMatrix(4, ["a", "b", "c", "d"])
    cm.update(pred, gt)
    r = cm.compute(seen=[True, True, False, False])
    # class a: tp 2 (0,0),(1,0); fp 1 (1,2); fn 1 (0,1) -> 2/4
    # class b: tp 2; fp 1 (0,1); fn 0 -> 2/3
    # class c: tp 1; fp 0; fn 1 -> 1/2
    # class d: absent from gt, predicted only on an ignore pixel -> absent from both -> None
    assert r["per_class"] == pytest.approx({"a": 50.0, "b": 200 / 3, "c": 50.0, "d": None})
    assert r["per_class"]["d"] is None
    assert r["miou"] == pytest.approx((50 + 200 / 3 + 50) / 3)
    assert r["seen_miou"] == pytest.approx((50 + 200 / 3) / 2)
    assert r["unseen_miou"] == pytest.approx(50.0)
    assert r["pixel_acc"] == pytest.approx(100 * 5 / 7)


def test_class_predicted_but_absent_from_gt_is_not_counted_by_default():
    gt, pred = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])
    cm = ConfusionMatrix(3)
    cm.update(pred, gt)
    # class 0: tp 1, fn 1 (taken by class 2) -> 1/2; class 1: 2/2; class 2: no gt pixel
    r = cm.compute(seen=[True, False, False])
    assert r["rule"] == "gt_present"
    assert r["per_class"] == {0: 50.0, 1: 100.0, 2: None}
    assert r["miou"] == 75.0
    assert r["seen_miou"] == 50.0 and r["unseen_miou"] == 100.0
    assert r["pixel_acc"] == 75.0


def test_union_rule_counts_a_predicted_only_class_as_zero():
    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 2, 1, 1]), np.array([0, 0, 1, 1]))
    r = cm.compute(seen=[True, False, False], rule="union")
    assert r["rule"] == "union"
    assert r["per_class"] == {0: 50.0, 1: 100.0, 2: 0.0}
    assert r["miou"] == 50.0
    assert r["seen_miou"] == 50.0 and r["unseen_miou"] == 50.0


def test_only_predicted_classes_give_no_mean_under_gt_present():
    cm = ConfusionMatrix(2)
    cm.update(np.array([1, 1]), np.array([I, I]))
    assert cm.compute()["miou"] is None and cm.compute()["pixel_acc"] is None
    cm.update(np.array([1]), np.array([0]))
    assert cm.compute()["per_class"] == {0: 0.0, 1: None}
    assert cm.compute(rule="union")["per_class"] == {0: 0.0, 1: 0.0}


def independent_miou(preds, gts, n, rule):
    ious = []
    for c in range(n):
        inter = union = gt_pixels = 0
        for p, g in zip(preds, gts, strict=True):
            valid = g != IGNORE_INDEX
            inter += np.sum((p == c) & (g == c) & valid)
            union += np.sum(((p == c) | (g == c)) & valid)
            gt_pixels += np.sum((g == c) & valid)
        counted = gt_pixels > 0 if rule == "gt_present" else union > 0
        ious.append(inter / union if counted else None)
    present = [v for v in ious if v is not None]
    return 100 * float(np.mean(present)), ious


@pytest.mark.parametrize("rule", ["gt_present", "union"])
def test_random_maps_match_independent_computation(rule):
    rng = np.random.default_rng(7)
    n = 11
    gts = [rng.integers(0, n - 1, size=(13, 17)) for _ in range(4)]  # class 10 never in gt
    for g in gts:
        g[rng.random(g.shape) < 0.1] = IGNORE_INDEX
    preds = [rng.integers(0, n, size=(13, 17)) for _ in range(4)]
    cm = ConfusionMatrix(n)
    for p, g in zip(preds, gts, strict=True):
        cm.update(torch.from_numpy(p), torch.from_numpy(g))
    expected, ious = independent_miou(preds, gts, n, rule)
    r = cm.compute(rule=rule)
    assert r["miou"] == pytest.approx(expected)
    for c in range(n):
        assert r["per_class"][c] == pytest.approx(None if ious[c] is None else 100 * ious[c])
    assert (r["per_class"][10] is None) == (rule == "gt_present")
    batched = ConfusionMatrix(n)
    batched.update(np.stack(preds), np.stack(gts))
    np.testing.assert_array_equal(batched.counts, cm.counts)


def test_rejects_bad_input():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="shape"):
        cm.update(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="predicted ids"):
        cm.update(np.full((2, 2), 3), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="seen has 2 entries"):
        cm.compute(seen=[True, False])
    with pytest.raises(ValueError, match="unknown rule"):
        cm.compute(rule="gt")


def test_table_lists_classes_and_summary():
    cm = ConfusionMatrix(2, ["sky", "grass"])
    cm.update(np.array([0, 1]), np.array([0, 1]))
    table = format_table(cm.compute())
    assert "sky" in table and "grass" in table and "100.00" in table and "miou" in table
