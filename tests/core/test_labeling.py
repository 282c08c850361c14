"""RoundLabeler: SAM sees the image at its true aspect ratio; masks come back at full size."""

import numpy as np
import torch

from ovseg_core.config import preset
from ovseg_core.device import pick_runtime
from ovseg_core.labeling import (
    EmbeddingCache,
    RoundLabeler,
    image_tensor,
    resize_mask,
    resize_region,
    working_size,
)
from ovseg_core.modeling.build import build_model
from ovseg_core.modeling.sam_encoder import build_sam
from ovseg_core.selftrain import SamRefiner
from ovseg_core.selftrain.regions import Region, mask_bbox


def test_sam_sees_the_true_image_and_masks_come_back_at_full_size():
    model = build_model(preset("tiny", dea_enabled=False), seed=0)
    refiner = SamRefiner(build_sam("tiny"))
    cache = EmbeddingCache()
    labeler = RoundLabeler(model, refiner, ["ground", "disk", "bar"], pick_runtime("cpu"),
                           threshold=0.0, cache=cache)
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 255, (96, 400, 3), dtype=np.uint8)  # wider than SAM's 256 side
    regions = labeler.label([wide], ["wide.png"])[0]
    assert regions and all(r.region.mask.shape == (96, 400) for r in regions)
    assert all(r.refined_mask.shape == (96, 400) for r in regions if r.gated)
    # the embedding is of the unsquashed image (longest side resized, padded), not the 128x128
    # model input
    direct = refiner.encode(image_tensor(wide))[0]
    torch.testing.assert_close(cache.get(refiner, [wide], ["wide.png"])[0], direct)
    squashed = torch.nn.functional.interpolate(image_tensor(wide), size=(128, 128))
    assert (refiner.encode(squashed)[0] - direct).abs().max() > 1e-3
    assert working_size(96, 400, 256) == (61, 256) and working_size(96, 200, 256) == (96, 200)


def torch_resize(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """resize_mask's definition: torch's bilinear over the whole image, thresholded at 0.5."""
    t = torch.from_numpy(mask)[None, None].float()
    return torch.nn.functional.interpolate(t, size=size, mode="bilinear",
                                           align_corners=False)[0, 0].numpy() > 0.5


def test_windowed_resize_equals_torch_bilinear_over_the_whole_image():
    rng = np.random.default_rng(0)
    for trial in range(150):
        h, w = (int(v) for v in rng.integers(8, 200, 2))
        factors = rng.choice([0.1, 0.3, 0.7, 1.3, 2.5, 6.0], 2)  # 10x shrinks skip rows
        size = tuple(max(1, int(v * f) + int(rng.integers(-3, 4)))
                     for v, f in zip((h, w), factors, strict=True))
        mask = np.zeros((h, w), bool)
        y, x = rng.integers(-4, h), rng.integers(-4, w)  # some touch the border
        mask[max(y, 0):y + rng.integers(1, 50), max(x, 0):x + rng.integers(1, 50)] = True
        mask[rng.random((h, w)) < 0.005] = True  # specks: thin, far from the box
        got = resize_mask(mask, size)
        np.testing.assert_array_equal(got, torch_resize(mask, size),
                                      err_msg=f"trial {trial}: {(h, w)} -> {size}")
        region = resize_region(Region(1, mask, 0.9, int(mask.sum()), mask_bbox(mask)), size)
        assert region.area == int(got.sum())
        assert region.bbox == (mask_bbox(got) if got.any() else (0, 0, 0, 0))
    line = np.zeros((100, 100), bool)
    line[47] = True  # one row that a 10x shrink skips
    assert not resize_mask(line, (10, 10)).any() and not torch_resize(line, (10, 10)).any()
    assert resize_region(Region(1, line, 0.9, 100, (0, 47, 100, 48)), (10, 10)).area == 0
