"""Report pictures: a large photo's sample panels are shrunk, its label maps without mixing
classes; the built-in world's 128 px images are enlarged a whole number of times."""

import numpy as np

from flows.report import MIN_SIDE, SAMPLE_SIDE, sample_size


def test_large_pictures_shrink_and_labels_keep_their_ids():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, (1500, 2000, 3), dtype=np.uint8)
    labels = np.full((1500, 2000), 65535, np.uint16)  # ignore, with two classes
    labels[100:900, 200:1200], labels[1000:1400, 1500:1900] = 3, 8
    small_photo, small_labels = sample_size(photo, nearest=False), sample_size(labels, True)
    assert small_photo.shape == (480, SAMPLE_SIDE, 3) and small_photo.dtype == np.uint8
    assert small_labels.shape == (480, SAMPLE_SIDE) and small_labels.dtype == np.uint16
    assert set(np.unique(small_labels)) == {3, 8, 65535}  # nearest: no blended ids
    assert small_labels[160, 224] == 3 and small_labels[384, 544] == 8  # scaled positions


def test_small_pictures_grow_nearest_neighbour():
    rng = np.random.default_rng(1)
    tiny = rng.integers(0, 9, (128, 128)).astype(np.uint16)
    big = sample_size(tiny, nearest=True)
    assert big.shape == (384, 384) and MIN_SIDE <= 384  # three times larger
    np.testing.assert_array_equal(big[::3, ::3], tiny)  # each pixel repeated, none mixed
    np.testing.assert_array_equal(big[2::3, 2::3], tiny)
    image = rng.integers(0, 255, (128, 96, 3), dtype=np.uint8)
    assert sample_size(image, nearest=False).shape == (384, 288, 3)
