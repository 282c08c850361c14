"""The round's teacher figures: a gated region's true class is the labelled majority under its
coarse mask; the model's precision and CLIP's top-1 are counted per true class."""

import numpy as np

from flows.teacher import majority, teacher_table
from ovseg_core.constants import IGNORE_INDEX


def test_majority_ignores_unlabelled_pixels():
    label = np.array([[1, 1, 2], [2, 2, IGNORE_INDEX], [IGNORE_INDEX] * 3], np.uint16)
    mask = np.ones_like(label, bool)
    assert majority(label, mask) == 2  # 3 x class 2 beat 2 x class 1; 4 ignored pixels skipped
    mask[:] = False
    mask[0, :2] = True
    assert majority(label, mask) == 1
    mask[:] = False
    mask[2] = True
    assert majority(label, mask) is None


def test_teacher_table_counts_per_true_class():
    regions = [
        {"truth": "star", "model": "star", "clip": "star"},
        {"truth": "star", "model": "star", "clip": "red disk"},
        {"truth": "star", "model": "red disk", "clip": None},  # not checked by CLIP
        {"truth": "ground", "model": "cross", "clip": "ground"},
        {"truth": None, "model": "cross", "clip": "cross"},  # no labelled pixel: no class
    ]
    table = teacher_table(regions, ["ground", "red disk", "star", "cross"])
    assert [row["class"] for row in table] == ["ground", "star"]
    star = table[1]
    assert star["regions"] == 3 and star["clip_checked"] == 2
    assert star["model_precision"] == 2 / 3 and star["clip_top1"] == 1 / 2
    assert table[0] == {"class": "ground", "regions": 1, "model_precision": 0.0,
                        "clip_checked": 1, "clip_top1": 1.0}
