import math

import numpy as np
import pytest

from ovseg_core.constants import IGNORE_INDEX
from ovseg_core.data.mixing import RemappedSamples, SharedSamples
from ovseg_core.data.name_map import NameMap


def _samples(*labels):
    return [(np.zeros((2, 2, 3), np.uint8), np.asarray(lab, np.uint16)) for lab in labels]


def _tagged(n, tag):
    """n samples whose label is (tag, item number): tells where a mixed item came from."""
    return _samples(*[[[tag, i]] for i in range(n)])


def test_remap_by_name_and_ignore_missing_classes():
    source = _samples([[0, 1], [2, IGNORE_INDEX]])
    remapped = RemappedSamples(source, ["sky", "cat", "road"], ["cat", "dog", "sky"])
    np.testing.assert_array_equal(remapped[0][1], [[2, 0], [IGNORE_INDEX, IGNORE_INDEX]])


def test_remap_by_meaning_and_by_an_extended_map():
    source = _samples([[0, 1, 2], [3, 4, IGNORE_INDEX]])
    coco = ["sky-other", "couch", "wall-brick", "playingfield", "giraffe"]
    target = ["wall", "sky", "sofa", "pitch"]
    remapped = RemappedSamples(source, coco, target)
    np.testing.assert_array_equal(remapped[0][1], [[1, 2, 0], [IGNORE_INDEX] * 3])
    extended = RemappedSamples(source, coco, target, NameMap.default().extend({"giraffe": "pitch"}))
    np.testing.assert_array_equal(extended[0][1], [[1, 2, 0], [IGNORE_INDEX, 3, IGNORE_INDEX]])


@pytest.mark.parametrize("primary, secondary, share",
                         [(20, 118, 0.15), (7, 3, 0.5), (10, 1000, 0.3), (13, 5, 0.7),
                          (1, 1, 0.99)])
@pytest.mark.parametrize("repeats", [None, 1])
def test_secondary_fraction_is_the_share(primary, secondary, share, repeats):
    mixed = SharedSamples(_tagged(primary, 1), _tagged(secondary, 2), share, repeats=repeats)
    tags = [int(mixed[i][1][0, 0]) for i in range(len(mixed))]
    assert abs(tags.count(2) / len(mixed) - share) < 1 / len(mixed)
    assert tags.count(2) == sum(mixed.source_of(i) == "secondary" for i in range(len(mixed)))
    used_primary = {int(mixed[i][1][0, 1]) for i in range(len(mixed)) if tags[i] == 1}
    assert used_primary == set(range(primary))
    if repeats == 1:
        assert len(mixed) == math.ceil(primary / (1 - share))
        assert tags[:primary] == [1] * primary
    else:  # every secondary item gets a slot
        used = {int(mixed[i][1][0, 1]) for i in range(len(mixed)) if tags[i] == 2}
        assert used == set(range(secondary))


def test_brief_sizes_twenty_k_target_and_coco():
    mixed = SharedSamples(range(20_000), range(118_000), 0.15, repeats=1)
    assert len(mixed) == 23_530  # ceil(20000 / 0.85)
    assert mixed.secondary_slots == 3_530
    covering = SharedSamples(range(20_000), range(118_000), 0.15)
    assert covering.repeats == 34 and covering.secondary_slots >= 118_000
    assert covering.secondary_slots / len(covering) == pytest.approx(0.15, abs=1e-5)


def test_share_zero_is_exactly_the_primary():
    primary = _tagged(5, 1)
    mixed = SharedSamples(primary, _tagged(50, 2), 0)
    assert len(mixed) == 5
    for i in range(5):
        assert mixed[i] is primary[i]
    with pytest.raises(IndexError):
        mixed[5]
    assert len(SharedSamples(primary, [], 0.0)) == 5


def test_mixing_is_deterministic_and_seeded():
    def order(seed):
        mixed = SharedSamples(_tagged(4, 1), _tagged(30, 2), 0.4, seed=seed, repeats=1)
        return [mixed[i][1].tolist() for i in range(len(mixed))]

    assert order(3) == order(3)
    assert order(3) != order(4)


@pytest.mark.parametrize("share",
                         [1, 1.0, -0.1, 1.5, float("nan"), float("inf"), "0.2", None, True])
def test_bad_share_raises(share):
    with pytest.raises(ValueError, match="share"):
        SharedSamples(_tagged(3, 1), _tagged(3, 2), share)


def test_empty_sets_and_bad_repeats_raise():
    with pytest.raises(ValueError, match="empty secondary"):
        SharedSamples(_tagged(3, 1), [], 0.2)
    with pytest.raises(ValueError, match="primary samples are empty"):
        SharedSamples([], _tagged(3, 2), 0.2)
    with pytest.raises(ValueError, match="repeats"):
        SharedSamples(_tagged(3, 1), _tagged(3, 2), 0.2, repeats=0)
