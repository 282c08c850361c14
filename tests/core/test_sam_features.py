"""Warping a source image's SAM features to an augmented crop (`ovseg_core.sam_features`)."""

import numpy as np
import torch

from ovseg_core.data.transforms import AugmentConfig, augment_with_geometry
from ovseg_core.sam_features import warp_to_crop


def _warp(features, geometry):
    return warp_to_crop(features, (128, 128), torch.tensor(geometry, dtype=torch.float32),
                        crop=128, sam_image_size=256)


def test_identity_flip_and_zoom_hand_computed():
    torch.manual_seed(0)
    f = torch.randn(3, 16, 16)  # a 128 px source: 16 cells of 8 px
    torch.testing.assert_close(_warp(f, [1, 1, 0, 0, 0]), f)
    torch.testing.assert_close(_warp(f, [1, 1, 0, 0, 1]), f.flip(-1))
    # shifted by one cell (8 px) to the right and down: crop cell (i, j) is source (i+1, j+1)
    torch.testing.assert_close(_warp(f, [1, 1, 8, 8, 0])[:, :15, :15], f[:, 1:, 1:])
    # 2x zoom: crop cell 2m+1 is at source cell m + 0.75 -> 0.75 f[m] + 0.25 f[m+1] per axis
    zoom = _warp(f, [2, 2, 0, 0, 0])
    row = 0.75 * f[:, 3] + 0.25 * f[:, 4]  # crop row 7 = source 3.75
    expected = 0.75 * row[:, 2] + 0.25 * row[:, 3]  # crop column 5 = source 2.75
    torch.testing.assert_close(zoom[:, 7, 5], expected)


def test_padding_outside_the_scaled_image_is_zero():
    f = torch.ones(2, 16, 16)
    small = _warp(f, [0.5, 0.5, 0, 0, 0])  # the source fills the crop's top-left quarter
    assert torch.all(small[:, :7, :7] > 0.99) and torch.all(small[:, 9:, :] == 0)


def test_geometry_describes_the_augmented_crop():
    """Crop pixel (y, x) before the flip is source pixel ((y + top) / sy, (x + left) / sx)."""
    rng = np.random.default_rng(0)
    label = rng.integers(0, 5, size=(128, 128)).astype(np.uint16)
    image = np.zeros((128, 128, 3), np.uint8)
    cfg = AugmentConfig(128, (1.0, 1.0), True, 0.0)  # scale 1: pure crop and flip
    for seed in range(4):
        _, lab, (sx, sy, top, left, flip) = augment_with_geometry(
            image, label, np.random.default_rng(seed), cfg)
        assert sx == sy == 1 and top == left == 0
        np.testing.assert_array_equal(lab, label[:, ::-1] if flip else label)
