"""SAM refinement of gated regions: batched prompt encoding + mask decoding, then acceptance.

The refiner takes image embeddings computed by its caller (`ovseg_core.labeling` encodes each
image once, at its true aspect ratio, and caches the embedding across rounds). The gated regions
of all images of a batch go through the prompt encoder and mask decoder together, in passes of
`max_prompts` prompts (by default 2 of a real SAM on CPU, where large passes are slower, and 64
on CUDA: `prompts_per_pass`).

Output: SAM's single-mask token (`output="single"`), thresholded at `mask_threshold` logits.
Acceptance: a SAM mask is trusted when SAM's predicted IoU >= `min_sam_iou` and the agreement
IoU(SAM mask, coarse) >= `min_agreement`. A trusted mask only moves the region's edge: it is
taken inside a band of `band` x the image's longest side around the coarse edge, the coarse
region is kept elsewhere (a coarse region from a 24 x 24 cost volume is off by less than a cell,
so SAM pixels further away are leaks or holes). An untrusted mask falls back to `fallback`:
"coarse" (the region itself becomes the pseudo-label, the default; refine-check's figures:
docs/results.md) or "ignore" (the region's pixels stay unlabelled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ovseg_core.modeling.decoder import resize_bilinear
from ovseg_core.modeling.sam_encoder import SamImageEncoder, SamParts
from ovseg_core.selftrain.prompts import (
    PromptSettings,
    RegionPrompts,
    SamFrame,
    build_prompts,
    edge_distance,
)
from ovseg_core.selftrain.regions import DEFAULT_GATE, Region, around, find_regions, gate
from storage.terms import COARSE, NONE, REFINED, paint_score

FALLBACKS = ("coarse", "ignore")
MAX_PROMPTS_PER_PASS = 64
"""Prompts per decoder pass when `RefinerSettings.max_prompts` is None, on CUDA, and the cap
elsewhere (on a GPU one large pass is the point of batching; unmeasured here: no GPU lent)."""
CPU_PASS_ELEMENTS = 2 * 256 * 64 * 64
"""Off CUDA a pass's prompts are limited to this many elements of image-side activations
(prompts x embed_dim x (image_size / 16)^2): 2 prompts of the real SAMs (256 x 64 x 64), 64 of
the tiny test SAM (32 x 16 x 16). On 2 CPU cores a pass over many real-SAM prompts is
memory-bound, so small passes are faster per region, while the tiny SAM is fastest in large
passes (`benchmarks/bench_refine_batching.py`, `benchmarks/bench_scale.py`; figures in
docs/results.md)."""
HOST_LOGITS = 16 * 1024 * 1024
"""Refined masks are resized to their image and copied to the host in groups of at most this
many float logits (64 MiB; 16 single-token masks of a 1024 x 1024 image, one of a 12-megapixel
photo), at least one mask at a time: each copy waits for the device, so fewer are faster."""


@dataclass
class RefinedRegion:
    """One region after the gate and (if gated) SAM refinement.

    refined_mask: (H, W) bool refined mask (None when not gated): SAM's mask inside the band
    around the region's edge, the region elsewhere (`RefinerSettings.band`). sam_iou: SAM's
    predicted IoU of its mask; agreement_iou: IoU(SAM's mask, region.mask), before the band
    is applied. accepted: the SAM mask is trusted.
    paints: what paints the pseudo-label map (`storage.terms.PAINTS`, the store's column of
    the same name): REFINED (refined_mask), COARSE (region.mask, the fallback for an untrusted
    SAM mask) or NONE.
    clip_class: CLIP's class for the crop of the mask the region paints (SAM's when trusted,
    else the coarse one; `ovseg_core.selftrain.verify`), None when CLIP did not check it.
    """

    region: Region
    gated: bool
    refined_mask: np.ndarray | None = None
    sam_iou: float | None = None
    agreement_iou: float | None = None
    accepted: bool = False
    paints: str = NONE
    clip_class: int | None = None

    @property
    def label_mask(self) -> np.ndarray | None:
        """(H, W) bool mask this region paints into the pseudo-label map, or None."""
        if self.paints == REFINED:
            return self.refined_mask
        if self.paints == COARSE:
            return self.region.mask
        return None

    @property
    def score(self) -> float:
        """Overlap priority: confidence x (sam_iou for a SAM mask, agreement_iou for a coarse
        mask of a gated region, 1 for a region never gated): `storage.terms.paint_score`."""
        return paint_score(self.region.confidence, self.paints, self.sam_iou,
                           self.agreement_iou)


@dataclass
class RefinerSettings:
    """Acceptance and decoding settings of `SamRefiner` (defaults: ovseg_core/selftrain/README.md).

    output: "single" keeps SAM's single-mask token (token 0, the default: best on every measured
        image); "best" keeps, of SAM's 4 tokens, the one with the highest sam_iou x agreement.
    mask_threshold: SAM logit above which a pixel is in the mask (SAM's own is 0.0; -1.0
        measured better, studies/refine_quality.py).
    band: a trusted SAM mask replaces the region only within this distance of the region's
        edge, as a fraction of the image's longest side (default 1/24: one cost-volume cell);
        None takes SAM's whole mask.
    min_area: smallest region `find_regions` keeps (px).
    max_prompts: prompts per decoder pass (bounds memory; results do not depend on it); None
        chooses by SAM and device (`prompts_per_pass`).
    """

    prompts: PromptSettings = field(default_factory=PromptSettings)
    min_sam_iou: float = 0.5
    min_agreement: float = 0.5
    fallback: str = "coarse"
    output: str = "single"
    mask_threshold: float = -1.0
    band: float | None = 1 / 24
    min_area: int = 16
    max_prompts: int | None = None

    def __post_init__(self) -> None:
        if self.fallback not in FALLBACKS:
            raise ValueError(f"fallback must be one of {FALLBACKS}, got {self.fallback!r}")
        if self.output not in ("single", "best"):
            raise ValueError(f"output must be 'single' or 'best', got {self.output!r}")


def sam_decode(parts: SamParts, embeddings: Tensor, image_index: Tensor,
                 prompts: RegionPrompts) -> tuple[Tensor, Tensor]:
    """All 4 mask tokens of SAM's decoder for M prompts over B image embeddings, in one pass.

    embeddings: (B, C, s, s); image_index: (M,) long, the embedding each prompt belongs to.
    Returns low-res mask logits (M, 4, 4s, 4s) and predicted IoUs (M, 4); token 0 is SAM's
    single-mask output, tokens 1-3 its multimask outputs. Same computation as
    `MaskDecoder.predict_masks`, except each prompt picks its own image embedding (the official
    call repeats one embedding for all prompts, so it can only take one image at a time).
    """
    dec = parts.mask_decoder
    sparse, dense = parts.prompt_encoder(points=(prompts.points, prompts.labels),
                                         boxes=prompts.boxes, masks=prompts.masks)
    m = sparse.shape[0]
    out_tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], dim=0)
    tokens = torch.cat([out_tokens.unsqueeze(0).expand(m, -1, -1), sparse], dim=1)
    src = embeddings[image_index] + dense
    pos = parts.prompt_encoder.get_dense_pe().expand(m, -1, -1, -1)
    b, c, h, w = src.shape
    hs, src = dec.transformer(src, pos, tokens)
    mask_tokens_out = hs[:, 1 : 1 + dec.num_mask_tokens, :]
    up = dec.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
    hyper = torch.stack([mlp(mask_tokens_out[:, i, :])
                         for i, mlp in enumerate(dec.output_hypernetworks_mlps)], dim=1)
    _, c2, h2, w2 = up.shape
    masks = (hyper @ up.reshape(b, c2, h2 * w2)).reshape(b, -1, h2, w2)
    return masks, dec.iou_prediction_head(hs[:, 0, :])


def prompts_per_pass(parts: SamParts, device: torch.device | str) -> int:
    """Prompts per decoder pass of `parts` on `device` when the settings leave it open:
    `MAX_PROMPTS_PER_PASS` on CUDA, else as many as fit `CPU_PASS_ELEMENTS` (at least 1)."""
    if torch.device(device).type == "cuda":
        return MAX_PROMPTS_PER_PASS
    per_prompt = parts.embed_dim * (parts.image_size // 16) ** 2
    return max(1, min(MAX_PROMPTS_PER_PASS, CPU_PASS_ELEMENTS // per_prompt))


def fit_probs(probs: np.ndarray | Tensor, size: tuple[int, int]) -> np.ndarray | Tensor:
    """(N, h', w') probabilities, bilinearly resized to `size` = (h, w) if they differ."""
    if tuple(probs.shape[-2:]) == tuple(size):
        return probs
    return resize_bilinear(torch.as_tensor(probs, dtype=torch.float32)[None], tuple(size))[0]


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool masks of one shape (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def clip_to_band(coarse: np.ndarray, sam: np.ndarray, width: float) -> np.ndarray:
    """(H, W) bool: `sam` where the pixel is within `width` px of `coarse`'s edge, else `coarse`.

    Distances are computed on the coarse mask's box grown by ceil(`width`) px (`around`):
    pixels beyond it are farther than `width` from the mask and keep the coarse value, and for
    `width` > 0 the window keeps a rim of at least 1 px outside the mask, so the distances
    inside it are the whole image's (`width` 0 keeps the coarse mask either way).
    """
    out = coarse.copy()
    window = around(coarse, int(np.ceil(min(width, max(coarse.shape)))))
    if window is not None:
        part = coarse[window]
        out[window] = np.where(edge_distance(part) <= width, sam[window], part)
    return out


class SamRefiner:
    """Turns gated coarse regions into SAM-refined masks with quality signals."""

    def __init__(self, parts: SamParts, settings: RefinerSettings | None = None) -> None:
        self.parts = parts
        self.settings = settings or RefinerSettings()
        self._encoder = SamImageEncoder(parts, channels_last_on_cpu=True)

    @property
    def device(self) -> torch.device:
        return next(self.parts.mask_decoder.parameters()).device

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, C, S/16, S/16) embeddings of the refiner's SAM.

        For callers whose model SAM differs from the refiner's; otherwise pass the model's
        embedding to `refine_batch` and skip this.
        """
        return self._encoder(images)

    def regions_of(self, probs: np.ndarray | Tensor) -> list[Region]:
        """Regions of one (N, h, w) probability map (`find_regions`, this refiner's min_area)."""
        return find_regions(probs, min_area=self.settings.min_area)

    @torch.no_grad()
    def refine_batch(self, embeddings: Tensor, image_sizes: list[tuple[int, int]],
                     probs: list[np.ndarray | Tensor | list[Region]],
                     threshold: float | Sequence[float] = DEFAULT_GATE
                     ) -> list[list[RefinedRegion]]:
        """Gate and refine the regions of B images together (decoder passes of `max_prompts`).

        embeddings: (B, C, s, s) SAM image embeddings of the images (one encoder pass, done by
            the caller). image_sizes: (h, w) of each image as SAM saw it, before its resize/pad.
        probs: per image an (N, h', w') probability map (bilinearly resized to (h, w) when its
            size differs; regions found here) or a list of Regions whose masks are (h, w).
        Returns per image, per region (gated or not), a RefinedRegion.
        """
        if len(image_sizes) != embeddings.shape[0] or len(probs) != embeddings.shape[0]:
            raise ValueError("embeddings, image_sizes and probs must describe the same images")
        regions = [p if isinstance(p, list) else self.regions_of(fit_probs(p, hw))
                   for p, hw in zip(probs, image_sizes, strict=True)]
        for rs, hw in zip(regions, image_sizes, strict=True):
            if any(r.mask.shape != tuple(hw) for r in rs):
                raise ValueError(f"region masks must be {tuple(hw)}, the image size SAM saw")
        gates = [gate(rs, threshold) for rs in regions]
        frames = [SamFrame(h, w, self.parts.image_size) for h, w in image_sizes]
        jobs = [(i, j) for i, g in enumerate(gates) for j, keep in enumerate(g) if keep]
        decoded = self._decode_jobs(embeddings, frames, regions, jobs)
        results = [[RefinedRegion(region=r, gated=False) for r in rs] for rs in regions]
        for (i, j), (mask, sam_iou) in zip(jobs, decoded, strict=True):
            results[i][j] = self._judge(regions[i][j], mask, sam_iou)
        return results

    def _decode_jobs(self, embeddings: Tensor, frames: list[SamFrame],
                     regions: list[list[Region]], jobs: list[tuple[int, int]]
                     ) -> list[tuple[np.ndarray, float]]:
        """(mask (h, w) bool, sam_iou) for each (image, region) job, in job order."""
        if not jobs:
            return []
        dev = embeddings.device
        prompts = self._prompts(embeddings, frames, regions, jobs)
        image_index = torch.as_tensor([i for i, _ in jobs], device=dev)
        out: list[tuple[np.ndarray, float]] = []
        step = self.settings.max_prompts or prompts_per_pass(self.parts, dev)
        for start in range(0, len(jobs), step):
            chunk = slice(start, start + step)
            low, iou = sam_decode(self.parts, embeddings, image_index[chunk],
                                    prompts.select(chunk))
            out += self._pick(frames, regions, jobs[chunk], low, iou)
        return out

    def _prompts(self, embeddings: Tensor, frames: list[SamFrame], regions: list[list[Region]],
                 jobs: list[tuple[int, int]]) -> RegionPrompts:
        """The prompts of every (image, region) job, in job order (images in ascending order,
        as `refine_batch` lists the jobs). embeddings: (B, C, s, s), for prompt rules that look
        at the image (studies/samrefiner_parts.py); these prompts do not."""
        per_image = [build_prompts([regions[i][j] for ii, j in jobs if ii == i], frames[i],
                                   self.settings.prompts, embeddings.device)
                     for i in sorted({i for i, _ in jobs})]
        return concat_prompts(per_image)

    def _pick(self, frames: list[SamFrame], regions: list[list[Region]],
              jobs: list[tuple[int, int]], low: Tensor, iou: Tensor
              ) -> list[tuple[np.ndarray, float]]:
        """(mask (h, w) bool, sam_iou) of each job of one decoder call.

        low: (J, 4, S/4, S/4) logits, iou: (J, 4). Masks are brought to their image's size and
        to the host in groups of at most HOST_LOGITS logits, the IoUs once.
        """
        tokens = [0] if self.settings.output == "single" else [0, 1, 2, 3]
        ious = iou[:, tokens].float().cpu().numpy()  # (J, T)
        picked: list[tuple[np.ndarray, float]] = [None] * len(jobs)  # type: ignore[list-item]
        for i in dict.fromkeys(i for i, _ in jobs):
            rows = [k for k, (image, _) in enumerate(jobs) if image == i]
            group = max(1, HOST_LOGITS // (frames[i].height * frames[i].width * len(tokens)))
            for start in range(0, len(rows), group):
                part = rows[start:start + group]
                logits = frames[i].masks_to_image(low[part][:, tokens])  # (k, T, h, w)
                masks = self._threshold(logits, [regions[i][jobs[k][1]] for k in part])
                for k, candidates in zip(part, masks, strict=True):
                    picked[k] = self._choose(regions[i][jobs[k][1]], candidates, ious[k])
        return picked

    def _threshold(self, logits: Tensor, regions: list[Region]) -> np.ndarray:
        """(k, T, h, w) bool host masks of SAM's logits (k, T, h, w) for `regions` (k): above
        `mask_threshold` (the regions are for rules that depend on them; studies/)."""
        return (logits > self.settings.mask_threshold).cpu().numpy()

    @staticmethod
    def _choose(region: Region, masks: np.ndarray, ious: np.ndarray) -> tuple[np.ndarray, float]:
        """SAM's single-mask token, or the best of its 4 by sam_iou x agreement with the coarse
        mask. masks: (T, h, w) bool, ious: (T,)."""
        if len(masks) == 1:  # nothing to choose: skip the agreement scoring (_judge does it)
            return masks[0], float(ious[0])
        scores = [float(s) * mask_iou(m, region.mask) for m, s in zip(masks, ious, strict=True)]
        best = int(np.argmax(scores))
        return masks[best], float(ious[best])

    def _judge(self, region: Region, mask: np.ndarray, sam_iou: float) -> RefinedRegion:
        """Acceptance of one SAM mask (H, W) bool, its band clip, and the fallback if untrusted."""
        s = self.settings
        agreement = mask_iou(mask, region.mask)
        accepted = sam_iou >= s.min_sam_iou and agreement >= s.min_agreement
        paints = REFINED if accepted else (COARSE if s.fallback == "coarse" else NONE)
        if s.band is not None:
            mask = clip_to_band(region.mask, mask, s.band * max(region.mask.shape))
        return RefinedRegion(region=region, gated=True, refined_mask=mask, sam_iou=sam_iou,
                             agreement_iou=agreement, accepted=accepted, paints=paints)


def concat_prompts(parts: list[RegionPrompts]) -> RegionPrompts:
    """Stack the prompts of several images (built with the same settings, so same widths)."""
    return RegionPrompts(
        points=torch.cat([p.points for p in parts]), labels=torch.cat([p.labels for p in parts]),
        boxes=None if parts[0].boxes is None else torch.cat([p.boxes for p in parts]),
        masks=None if parts[0].masks is None else torch.cat([p.masks for p in parts]))
