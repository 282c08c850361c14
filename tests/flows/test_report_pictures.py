"""Report pictures: a large photo's sample panels are shrunk, its label maps without mixing
classes; small images keep their size."""

import numpy as np

from flows.report import SAMPLE_SIDE, shrunk


def test_large_pictures_shrink_and_labels_keep_their_ids():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, (1500, 2000, 3), dtype=np.uint8)
    labels = np.full((1500, 2000), 65535, np.uint16)  # ignore, with two classes
    labels[100:900, 200:1200], labels[1000:1400, 1500:1900] = 3, 8
    small_photo, small_labels = shrunk(photo, nearest=False), shrunk(labels, nearest=True)
    assert small_photo.shape == (480, SAMPLE_SIDE, 3) and small_photo.dtype == np.uint8
    assert small_labels.shape == (480, SAMPLE_SIDE) and small_labels.dtype == np.uint16
    assert set(np.unique(small_labels)) == {3, 8, 65535}  # nearest: no blended ids
    assert small_labels[160, 224] == 3 and small_labels[384, 544] == 8  # scaled positions
    tiny = labels[:128, :128]
    assert shrunk(tiny, nearest=True) is tiny  # the built-in world's images stay as they are
