import numpy as np
import pytest

from ovseg_core.constants import IGNORE_INDEX
from ovseg_core.data.mixing import ConcatSamples, RemappedSamples


def _samples(*labels):
    return [(np.zeros((2, 2, 3), np.uint8), np.asarray(lab, np.uint16)) for lab in labels]


def test_concat_indexes_every_part_in_order():
    a, b = _samples([[0]], [[1]]), _samples([[2]])
    mixed = ConcatSamples([a, [], b])
    assert len(mixed) == 3
    assert [int(mixed[i][1][0, 0]) for i in range(3)] == [0, 1, 2]
    with pytest.raises(IndexError):
        mixed[3]


def test_remap_by_name_and_ignore_missing_classes():
    source = _samples([[0, 1], [2, IGNORE_INDEX]])
    remapped = RemappedSamples(source, ["sky", "cat", "road"], ["cat", "dog", "sky"])
    np.testing.assert_array_equal(remapped[0][1], [[2, 0], [IGNORE_INDEX, IGNORE_INDEX]])
