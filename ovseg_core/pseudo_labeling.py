"""One batch of a self-training round: images -> probabilities -> gated, SAM-refined regions.

This is the per-shard work of `flows.self_training`, kept here so it is plain PyTorch and
testable without Prefect or the store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from ovseg_core.device import Runtime
from ovseg_core.inference import predict_probabilities
from ovseg_core.profiling import phase
from ovseg_core.selftrain import RefinedRegion, SamRefiner
from ovseg_core.selftrain.regions import mask_bbox


@dataclass
class LabeledImage:
    """The regions of one image at its own size, and its coarse (argmax) map for reports.

    coarse: uint16 (H, W) argmax class ids; regions: every region (gated or not) with masks
    resized back to (H, W).
    """

    coarse: np.ndarray
    regions: list[RefinedRegion]


def to_batch(images: list[np.ndarray], size: int) -> torch.Tensor:
    """uint8 (H_i, W_i, 3) images -> float (B, 3, size, size) in [0, 1] (bilinear resize)."""
    resized = [
        F.interpolate(torch.from_numpy(np.array(im)).permute(2, 0, 1)[None].float(),
                      size=(size, size), mode="bilinear", align_corners=False)
        for im in images
    ]
    return torch.cat(resized).clamp_(0, 255) / 255.0


def _resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of a bool (h, w) mask to (height, width)."""
    if mask.shape == (height, width):
        return mask
    t = torch.from_numpy(mask)[None, None].float()
    return F.interpolate(t, size=(height, width), mode="nearest")[0, 0].numpy() > 0.5


def _to_image_size(result: RefinedRegion, height: int, width: int) -> RefinedRegion | None:
    """The region with its masks resized to the image; None if it vanishes at that size."""
    mask = _resize_mask(result.region.mask, height, width)
    if not mask.any():
        return None
    region = replace(result.region, mask=mask, area=int(mask.sum()), bbox=mask_bbox(mask))
    refined = result.refined_mask
    if refined is not None:
        refined = _resize_mask(refined, height, width)
    return replace(result, region=region, refined_mask=refined)


@torch.no_grad()
def label_images(model, refiner: SamRefiner, text: torch.Tensor, images: list[np.ndarray],
                 runtime: Runtime, size: int, threshold: float,
                 encode: Callable[[torch.Tensor], torch.Tensor] | None = None
                 ) -> list[LabeledImage]:
    """Pseudo-label a batch of images in one model pass and one batched SAM decoder pass.

    images: uint8 (H_i, W_i, 3) RGB, any sizes; each is resized to size x size for the model
    and SAM. text: (N, P, D) from `model.encode_vocabulary`. encode: None = refine on the
    model's own SAM embedding (paper and mobile presets: one SAM encoder pass per image);
    else a function (B, 3, size, size) in [0, 1] -> (B, C, s, s) giving the refiner's
    embeddings (the tiny preset's random SAM cannot refine; callers may cache these, since
    the refiner's SAM is frozen and the images are the same every round).
    """
    batch = to_batch(images, size).to(runtime.device)
    with phase("model"):
        probs, embedding = predict_probabilities(model, batch, text, runtime)
    if encode is not None:
        with phase("sam_encoder"):
            embedding = encode(batch.to(refiner.device))
    elif embedding is None:
        raise ValueError("the model computed no SAM embedding (DEA off): pass `encode`")
    per_image = [p.float().cpu() for p in probs]
    with phase("sam_refine"):
        refined = refiner.refine_batch(embedding.to(refiner.device).float(),
                                       [(size, size)] * len(images), per_image, threshold)
    out = []
    for image, p, results in zip(images, per_image, refined, strict=True):
        h, w = image.shape[:2]
        coarse = F.interpolate(p[None], size=(h, w), mode="bilinear", align_corners=False)
        resized = [_to_image_size(r, h, w) for r in results]
        out.append(LabeledImage(coarse=coarse[0].argmax(0).numpy().astype(np.uint16),
                                regions=[r for r in resized if r is not None]))
    return out
