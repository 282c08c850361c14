"""The synthetic dataset: layout, vocabularies, seen/unseen content, byte-exact determinism."""

import numpy as np
import pytest

from ovseg_core.constants import IGNORE_INDEX
from ovseg_core.data import open_dataset, read_synthetic_info, write_synthetic_dataset
from ovseg_core.errors import OvsegError

SMALL = dict(num_train=6, num_val=3, num_target=5, image_size=64)


def all_files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes(tmp_path):
    a = all_files(write_synthetic_dataset(tmp_path / "a", seed=3, **SMALL))
    b = all_files(write_synthetic_dataset(tmp_path / "b", seed=3, **SMALL))
    c = all_files(write_synthetic_dataset(tmp_path / "c", seed=4, **SMALL))
    assert a == b
    assert a.keys() == c.keys() and a != c
    assert len(a) == 2 * (6 + 3 + 5) + 3


def test_layout_vocabularies_and_unseen_only_in_target(tmp_path):
    out = write_synthetic_dataset(tmp_path / "s", seed=0, **SMALL)
    info = read_synthetic_info(out)
    train = open_dataset("generic", out / "source", split="train")
    val = open_dataset("generic", out / "source", split="val")
    target = open_dataset("generic", out / "target")
    assert (len(train), len(val), len(target)) == (6, 3, 5)
    assert train.class_names == info["seen"] and len(info["seen"]) == 6
    assert target.class_names[:6] == train.class_names and len(info["unseen"]) == 3
    assert info["target_seen"] == [True] * 6 + [False] * 3
    for ds in (train, val):
        for image, label in (ds[i] for i in range(len(ds))):
            assert image.shape == (64, 64, 3) and label.shape == (64, 64)
            assert label.max() < 6 and (label == 0).any()
    for _, label in (target[i] for i in range(len(target))):
        assert (label >= 6).any() and IGNORE_INDEX not in label


def test_refuses_to_overwrite(tmp_path):
    write_synthetic_dataset(tmp_path, seed=0, **SMALL)
    with pytest.raises(OvsegError, match="already holds a dataset"):
        write_synthetic_dataset(tmp_path, seed=0, **SMALL)


def _mean_colours(ds) -> np.ndarray:
    """Mean RGB float (9, 3) of each target class over the dataset's labelled pixels."""
    sums, counts = np.zeros((9, 3)), np.zeros(9)
    for image, label in (ds[i] for i in range(len(ds))):
        for c in np.unique(label):
            sums[c] += image[label == c].mean(0)
            counts[c] += 1
    return sums / np.maximum(counts, 1)[:, None]


def test_every_unseen_class_wears_a_seen_class_colour(tmp_path):
    out = write_synthetic_dataset(tmp_path / "s", seed=1, num_train=0, num_val=0, num_target=24,
                                  image_size=96)
    means = _mean_colours(open_dataset("generic", out / "target"))
    seen, unseen = means[1:6], means[6:9]
    nearest = np.linalg.norm(unseen[:, None] - seen[None], axis=-1).min(axis=1)
    apart = np.linalg.norm(seen[:, None] - seen[None], axis=-1)[np.triu_indices(5, 1)].min()
    # each unseen class is nearer a seen class's colour than the seen classes are to each other
    assert (nearest < apart / 2).all(), (nearest, apart)


def test_source_scenes_hold_unseen_shapes_labelled_ground(tmp_path):
    out = write_synthetic_dataset(tmp_path / "s", seed=0, num_train=20, num_val=0, num_target=0,
                                  image_size=96)
    train = open_dataset("generic", out / "source", split="train")
    # the star is red like the red disk (label 1); red pixels labelled ground are stars
    unlabelled_red = [((image[..., 0] > 170) & (image[..., 1] < 90) & (label == 0)).sum()
                      for image, label in (train[i] for i in range(len(train)))]
    assert sum(n > 50 for n in unlabelled_red) >= 2, unlabelled_red


def test_held_out_target_split_is_new_images_and_leaves_the_others_unchanged(tmp_path):
    plain = all_files(write_synthetic_dataset(tmp_path / "a", seed=2, **SMALL))
    out = write_synthetic_dataset(tmp_path / "b", seed=2, num_target_val=4, **SMALL)
    both = all_files(out)
    held_out = {k: v for k, v in both.items() if k.startswith("target_val/")}
    assert {k: v for k, v in both.items() if k not in held_out and k != "dataset.json"} == {
        k: v for k, v in plain.items() if k != "dataset.json"}
    val = open_dataset("generic", out / "target_val")
    target = open_dataset("generic", out / "target")
    assert len(val) == 4 and val.class_names == target.class_names
    target_pixels = {target[i][0].tobytes() for i in range(len(target))}
    assert not any(val[i][0].tobytes() in target_pixels for i in range(len(val)))
    assert read_synthetic_info(out)["target"]["val"] == 4
