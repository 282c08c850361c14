"""RoundLabeler: SAM sees the image at its true aspect ratio; masks come back at full size."""

import numpy as np
import torch

from ovseg_core.config import preset
from ovseg_core.device import pick_runtime
from ovseg_core.labeling import EmbeddingCache, RoundLabeler, image_tensor, working_size
from ovseg_core.modeling.build import build_model
from ovseg_core.modeling.sam_encoder import build_sam
from ovseg_core.selftrain import SamRefiner


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
