"""The frozen SAM's features of training crops, from one encoding per source image.

SAM is frozen and a training source image does not change, so its SAM features are encoded once
per training run (`SamFeatureCache`, by sample index) and each augmented crop takes its features
by warping them with the crop's own geometry (`warp_to_crop`: scale, crop offset, flip) instead
of encoding the crop. `benchmarks/bench_sam_features.py` measures the choice (a training step's
cost this way and with SAM encoding every crop, and how similar the warped features are to the
per-crop ones on SAM's grid and on the CLIP grid DEA resamples them to); docs/results.md has its
figures.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ovseg_core.data.transforms import to_model_input


class SamFeatureCache:
    """SAM features (C, gh, gw) of source images by key, the `size` most recent kept (CPU).

    Lifetime: one training run (the model's SAM is frozen, so entries never go stale within
    it). At 256 px MobileSAM one entry is 256 x 16 x 16 floats (256 KiB).
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._store: OrderedDict[int, tuple[Tensor, tuple[int, int]]] = OrderedDict()

    def get(self, model, key: int, read_image: Callable[[], np.ndarray]
            ) -> tuple[Tensor, tuple[int, int]]:
        """(features (C, gh, gw) on the model's device, (H, W) of the source image);
        `read_image()` (uint8 (H, W, 3)) is called and encoded only when `key` is not cached."""
        device = next(model.sam.parameters()).device
        if key not in self._store:
            image = read_image()
            x = torch.from_numpy(to_model_input(image))[None].to(device)
            self._store[key] = (model.sam_features(x)[0].cpu(), image.shape[:2])
            while len(self._store) > self.size:
                self._store.popitem(last=False)
        self._store.move_to_end(key)
        features, size = self._store[key]
        return features.to(device), size


def warp_to_crop(features: Tensor, source_hw: tuple[int, int], geometry: Tensor, crop: int,
                 sam_image_size: int) -> Tensor:
    """Features of an augmented crop from its source image's SAM features.

    features: (C, gh, gw) of the source image (H, W) = source_hw (cells of 16 px at SAM's input,
    whose longest side is `sam_image_size`). geometry: (5,) from `augment_with_geometry`.
    Returns (C, g, g), g = sam_image_size / 16: the grid SAM gives when it encodes the crop
    itself; cells outside the scaled image (the crop's padding) are zero.
    """
    height, width = source_hw
    cell = 16.0 * max(height, width) / sam_image_size  # source px per feature cell
    sx, sy, top, left, flip = (float(v) for v in geometry)
    g = sam_image_size // 16
    centers = (torch.arange(g, dtype=torch.float32, device=features.device) + 0.5) * crop / g
    xs = crop - centers if flip else centers
    u = (xs + left) / sx / cell  # in feature cells of the source
    v = (centers + top) / sy / cell
    gh, gw = features.shape[-2:]
    grid_x = (2 * u / gw - 1).view(1, g).expand(g, g)
    grid_y = (2 * v / gh - 1).view(g, 1).expand(g, g)
    grid = torch.stack([grid_x, grid_y], dim=-1)[None].to(features.dtype)
    return F.grid_sample(features[None], grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)[0]


def crop_features(model, cache: SamFeatureCache, samples, indices: Tensor, geometry: Tensor,
                  crop: int) -> Tensor:
    """(B, C, g, g) SAM features of a batch of augmented crops: sample `indices[b]` of
    `samples` warped by `geometry[b]` (B, 5), on the model's SAM device."""
    out = []
    for index, geo in zip(indices.tolist(), geometry, strict=True):
        features, size = cache.get(model, index, lambda i=index: samples[i][0])
        out.append(warp_to_crop(features, size, geo.to(features.device), crop,
                                model.sam.image_size))
    return torch.stack(out)
