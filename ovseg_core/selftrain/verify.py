"""CLIP's check of a pseudo-label's class: zero-shot classification of the region's crop.

The model's regions are only as right as its dense predictions, and on the classes nobody
labelled those are poor: a confident region can carry the wrong class. SAM cannot see that, it
only checks the shape. CLIP can: classified as a whole, a crop of one region is the task CLIP
was trained for, and it is more reliable than CLIP's dense features (docs/method-notes.md gives
the built-in world's tiny CLIP's figures). So each gated region's mask is cut out and
classified against the whole vocabulary by the *pretrained* CLIP (the file the model started
from, not the model's fine-tuned copy, which has only learned the seen classes); a region whose
class CLIP does not pick paints nothing. This is not in the paper (docs/method-notes.md).

The crop (`masked_crop`): the smallest square around the mask, grown by 1/8 of its side on
each side and cut at the image's edges; pixels outside the mask take the mask's mean colour
(so neighbouring objects do not vote); resized to CLIP's input size. The embedding is the mean
of CLIP's dense projections (`clip_pretrain.pooled_image_embedding`, as in its zero-shot check).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from ovseg_core.clip_pretrain import class_embeddings, pooled_image_embedding
from ovseg_core.modeling.clip_encoder import ClipVisual, clip_parts
from ovseg_core.selftrain.refiner import RefinedRegion
from storage.terms import NONE

MARGIN = 1 / 8
"""Context kept around a region's box, as a fraction of the box's longest side, per side."""


def masked_crop(image: np.ndarray, mask: np.ndarray, size: int) -> torch.Tensor:
    """The region's square crop, float (3, size, size) in [0, 1].

    image: uint8 (H, W, 3) RGB; mask: bool (H, W), not empty; size: CLIP's input size (px).
    """
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    half = max(y1 - y0, x1 - x0) * (1 + 2 * MARGIN) / 2
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    top, bottom = max(int(cy - half), 0), min(int(np.ceil(cy + half)), mask.shape[0])
    left, right = max(int(cx - half), 0), min(int(np.ceil(cx + half)), mask.shape[1])
    pixels = image[top:bottom, left:right].astype(np.float32)
    inside = mask[top:bottom, left:right]
    pixels = np.where(inside[..., None], pixels, pixels[inside].mean(axis=0))
    crop = torch.from_numpy(pixels).permute(2, 0, 1)[None] / 255.0
    return F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False)[0]


class ClipVerifier:
    """Zero-shot classification of region crops by a frozen CLIP.

    visual: the pretrained CLIP's dense encoder; class_emb: (N, D) class embeddings of the
    vocabulary (template average); size: the crop size (px, CLIP's input size).
    """

    def __init__(self, visual: ClipVisual, class_emb: torch.Tensor, size: int,
                 batch_size: int = 64) -> None:
        self.visual = visual.eval().requires_grad_(False)
        self.class_emb = F.normalize(class_emb.float(), dim=-1)
        self.size, self.batch_size = int(size), int(batch_size)

    @classmethod
    def from_clip(cls, clip: torch.nn.Module, class_names: Sequence[str], size: int
                  ) -> ClipVerifier:
        """A verifier from an open_clip model (its towers are taken over, not copied)."""
        visual, text = clip_parts(clip)
        with torch.no_grad():
            emb = class_embeddings(text, list(class_names))
        return cls(visual, emb, size)

    def to(self, device: torch.device | str) -> ClipVerifier:
        """Moves the encoder and the class embeddings to `device`; returns self."""
        self.visual.to(device)
        self.class_emb = self.class_emb.to(device)
        return self

    @torch.no_grad()
    def classify(self, crops: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """CLIP's class of each (image, mask) pair: int64 (K,) indices into the vocabulary.

        crops: K pairs of uint8 (H, W, 3) image and bool (H, W) mask (not empty); images may
        differ between pairs. Encoded `batch_size` crops per CLIP call.
        """
        if not crops:
            return np.zeros(0, dtype=np.int64)
        device = self.class_emb.device
        classes = []
        for start in range(0, len(crops), self.batch_size):
            batch = torch.stack([masked_crop(image, mask, self.size)
                                 for image, mask in crops[start:start + self.batch_size]])
            emb = pooled_image_embedding(self.visual, batch.to(device))
            classes.append((emb.float() @ self.class_emb.t()).argmax(dim=1).cpu())
        return torch.cat(classes).numpy()


def verify_regions(verifier: ClipVerifier, images: Sequence[np.ndarray],
                   regions: Sequence[Sequence[RefinedRegion]]) -> list[list[RefinedRegion]]:
    """Each image's regions with CLIP's class of every gated one (`clip_class`), all images'
    gated regions classified together; a gated region whose class CLIP does not pick paints
    nothing (`paints` NONE). The mask classified is SAM's when it is trusted (and not
    empty), else the coarse region.

    images: uint8 (H_i, W_i, 3); regions[i]: image i's regions, masks at (H_i, W_i), coarse
    masks not empty.
    """
    gated = [(i, j) for i, rs in enumerate(regions) for j, r in enumerate(rs) if r.gated]
    found = verifier.classify([(images[i], checked_mask(regions[i][j])) for i, j in gated])
    classes = dict(zip(gated, found.tolist(), strict=True))
    out = []
    for i, rs in enumerate(regions):
        out.append([])
        for j, r in enumerate(rs):
            if (i, j) in classes:
                agrees = classes[i, j] == r.region.class_id
                r = replace(r, clip_class=classes[i, j],
                            paints=r.paints if agrees else NONE)
            out[i].append(r)
    return out


def checked_mask(region: RefinedRegion) -> np.ndarray:
    """The (H, W) bool mask CLIP classifies: SAM's when trusted and not empty, else coarse."""
    refined = region.refined_mask
    if region.accepted and refined is not None and refined.any():
        return refined
    return region.region.mask
