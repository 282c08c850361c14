"""Round labelling: target images -> gated, SAM-refined regions at each image's full size.

`RoundLabeler` is what a self-training round runs per batch of target images; it is plain
PyTorch (no Prefect, no store), built once per worker from a model and a refiner:

- the model sees each image resized to its square input (`input_size`, the paper's protocol)
  and gives (N, size, size) class probabilities; regions are found there;
- SAM sees the image as it is: its true aspect ratio, longest side resized to SAM's 1024 and
  padded bottom-right; each region's mask is resized to the image's working size (the image
  itself, or the size SAM's resize gives when the image is larger) and prompts are made in
  SAM's frame; refined masks come back at the working size, then at the full image size.

SAM is frozen and target images do not change between rounds, so the refiner's embeddings are
kept (`EmbeddingCache`, by image key; about 4 MiB each at 1024 px) across batches and rounds.
The model's own SAM embedding (DEA) is of the square model input, so it is not reused for
refinement: the refiner always encodes the true image (with `refiner_sam: model` that is a
second pass of the same encoder, the price of the true aspect ratio).
"""

from __future__ import annotations

import hashlib
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from ovseg_core.device import Runtime
from ovseg_core.inference import predict_probabilities
from ovseg_core.modeling.sam_encoder import resize_longest_side
from ovseg_core.profiling import phase
from ovseg_core.selftrain import RefinedRegion, SamRefiner
from ovseg_core.selftrain.regions import Region, around, mask_bbox
from ovseg_core.selftrain.verify import ClipVerifier, verify_regions

LABELING_VERSION = 3
"""Version of the labelling algorithm (regions, gate, prompts, SAM choice and trust, painting
source). Part of every shard key, so committed shards of another algorithm are never mixed into
a resumed round. Bump it with any change that changes a round's rows for the same inputs."""


class EmbeddingCache:
    """Refiner image embeddings by image key, the `size` most recent kept (CPU tensors)."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._store: OrderedDict[str, torch.Tensor] = OrderedDict()

    def get(self, refiner: SamRefiner, images: list[np.ndarray], keys: Sequence[str]
            ) -> torch.Tensor:
        """(B, C, s, s) embeddings of the images at their true aspect ratio, on the refiner's
        device; images not cached yet are encoded one by one."""
        for image, key in zip(images, keys, strict=True):
            if key not in self._store:
                batch = image_tensor(image).to(refiner.device)
                self._store[key] = refiner.encode(batch)[0].cpu()
                while len(self._store) > self.size:
                    self._store.popitem(last=False)
            self._store.move_to_end(key)
        return torch.stack([self._store[k] for k in keys]).to(refiner.device)


_DIGESTS: weakref.WeakKeyDictionary[torch.nn.Module, str] = weakref.WeakKeyDictionary()


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 of a frozen module's weights (names, shapes, bytes): the identity of a SAM whose
    weights came from a model checkpoint rather than a named file. Computed once per module
    object (a worker labelling many shards with one cached model hashes it once)."""
    if module not in _DIGESTS:
        _DIGESTS[module] = _digest(module)
    return _DIGESTS[module]


def _digest(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class RoundLabeler:
    """Labels batches of target images with one model, one vocabulary and one refiner.

    model: an STSeg; class_names: the target vocabulary (N entries); threshold: the
    confidence gate (regions above it are refined by SAM), one value or one per class;
    cache: the refiner's embeddings; verifier: CLIP's check of each gated region's class
    (None: no check).
    """

    def __init__(self, model, refiner: SamRefiner, class_names: Sequence[str], runtime: Runtime,
                 threshold: float | Sequence[float], cache: EmbeddingCache | None = None,
                 verifier: ClipVerifier | None = None) -> None:
        self.model, self.refiner, self.runtime = model.eval(), refiner, runtime
        self.threshold, self.verifier = threshold, verifier
        self.size = int(model.config.input_size)
        self.cache = cache or EmbeddingCache()
        with torch.no_grad(), phase("vocabulary"):
            self.text = model.encode_vocabulary(list(class_names))

    @torch.no_grad()
    def label(self, images: list[np.ndarray], keys: Sequence[str]) -> list[list[RefinedRegion]]:
        """Regions of each image (gated or not) with masks at the image's (H, W).

        images: uint8 (H_i, W_i, 3) RGB, any sizes; keys: one stable id per image (its path),
        the key of its cached SAM embedding. One model pass; SAM decodes all the batch's gated
        regions together (`SamRefiner.refine_batch`).
        """
        work, regions = self.coarse_regions(images)
        with phase("sam_encoder"):
            embeddings = self.cache.get(self.refiner, images, keys)
        with phase("sam_refine"):
            refined = self.refiner.refine_batch(embeddings, work, regions, self.threshold)
        with phase("regions"):
            full = [[r for r in (to_image_size(x, *im.shape[:2]) for x in rs) if r is not None]
                    for im, rs in zip(images, refined, strict=True)]
        if self.verifier is None:
            return full
        with phase("clip_verify"):  # every gated region of the batch in CLIP calls together
            return verify_regions(self.verifier, images, full)

    @torch.no_grad()
    def confidences(self, images: list[np.ndarray]) -> list[tuple[int, float]]:
        """(class id, confidence) of every region of the images: the model pass of `label`
        without SAM (what a class-balanced gate is calibrated on)."""
        _, regions = self.coarse_regions(images)
        return [(r.class_id, float(r.confidence)) for rs in regions for r in rs]

    @torch.no_grad()
    def coarse_regions(self, images: list[np.ndarray]
                       ) -> tuple[list[tuple[int, int]], list[list[Region]]]:
        """One model pass: per image its working size (h, w) and its regions, masks (h, w)."""
        with phase("model"):
            probs, _ = predict_probabilities(self.model, to_square_batch(images, self.size),
                                             self.text, self.runtime)
        work = [working_size(*im.shape[:2], self.refiner.parts.image_size) for im in images]
        with phase("regions"):  # model output -> regions: post-processing, not orchestration
            return work, [self.regions_at(p.float().cpu(), hw)
                          for p, hw in zip(probs, work, strict=True)]

    def regions_at(self, probs: torch.Tensor, size: tuple[int, int]) -> list[Region]:
        """Regions of (N, s, s) probabilities, found at s x s, masks resized to `size`."""
        resized = (resize_region(r, size) for r in self.refiner.regions_of(probs))
        return [r for r in resized if r.area > 0]


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (1, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)[None].float() / 255.0


def to_square_batch(images: list[np.ndarray], size: int) -> torch.Tensor:
    """uint8 (H_i, W_i, 3) images -> float (B, 3, size, size) in [0, 1] (bilinear resize)."""
    resized = [F.interpolate(image_tensor(im), size=(size, size), mode="bilinear",
                             align_corners=False) for im in images]
    return torch.cat(resized).clamp_(0, 1)


def working_size(height: int, width: int, sam_size: int) -> tuple[int, int]:
    """(h, w) at which regions are refined: the image's own size, or SAM's resize of it when
    its longest side exceeds `sam_size` (SAM sees no more detail than that)."""
    if max(height, width) <= sam_size:
        return height, width
    return resize_longest_side(height, width, sam_size)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """bool (h, w) -> bool `size`: bilinear on the 0/1 mask, thresholded at 0.5 (smooth edges
    when enlarging a coarse mask, nearest-like when shrinking)."""
    return resized_window(mask, size)[0]


def resized_window(mask: np.ndarray, size: tuple[int, int]
                   ) -> tuple[np.ndarray, tuple[slice, slice] | None]:
    """`resize_mask`'s mask and a window of it that holds all its True pixels (None: empty).

    Only the output pixels whose bilinear sources touch the mask's box are computed (a region
    of a 12-megapixel photo is a small part of it): the same pixels as torch's bilinear
    `F.interpolate(align_corners=False)` over the whole image, thresholded at 0.5 (a test
    compares them on random masks and sizes), about 20x faster for a photo's region
    (`benchmarks/bench_refine_large.py`).
    """
    if mask.shape == tuple(size):
        return mask, around(mask, 0)
    out = np.zeros(size, dtype=bool)
    box = around(mask, 0)
    if box is None:
        return out, None
    along_y = bilinear_axis(mask.shape[0], size[0], box[0])
    along_x = bilinear_axis(mask.shape[1], size[1], box[1])
    if along_y is None or along_x is None:  # shrinking skipped every row or column it holds
        return out, None
    (rows, y0, y1, wy), (cols, x0, x1, wx) = along_y, along_x
    top, left = int(y0[0]), int(x0[0])  # the input pixels the window reads start here
    part = mask[top:int(y1[-1]) + 1, left:int(x1[-1]) + 1].astype(np.float32)
    across = part[:, x0 - left] * (1 - wx) + part[:, x1 - left] * wx  # (rows read, out cols)
    out[rows, cols] = across[y0 - top] * (1 - wy)[:, None] + across[y1 - top] * wy[:, None] > 0.5
    return out, (rows, cols)


def bilinear_axis(n_in: int, n_out: int, touch: slice
                  ) -> tuple[slice, np.ndarray, np.ndarray, np.ndarray] | None:
    """One axis of a bilinear resize from `n_in` to `n_out` pixels (half-pixel centres, as
    torch's align_corners=False): the output pixels whose two sources (i0, i1) meet the input
    range `touch`, with their i0, i1 (int64) and i1's weight (float32); None when no output
    pixel reads that range (shrinking by more than 2x skips input pixels)."""
    dst = np.arange(n_out, dtype=np.float32)
    src = np.maximum((dst + np.float32(0.5)) * np.float32(n_in / n_out) - np.float32(0.5),
                     np.float32(0.0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    hit = np.flatnonzero((i1 >= touch.start) & (i0 < touch.stop))
    if hit.size == 0:
        return None
    a, b = int(hit[0]), int(hit[-1]) + 1
    return slice(a, b), i0[a:b], i1[a:b], (src[a:b] - i0[a:b]).astype(np.float32)


def resize_region(region: Region, size: tuple[int, int]) -> Region:
    """The region with its mask, area and box at `size` (the mask may vanish: area 0)."""
    mask, window = resized_window(region.mask, size)
    part = mask[window] if window is not None else np.zeros((0, 0), bool)
    if not part.any():
        return replace(region, mask=mask, area=0, bbox=(0, 0, 0, 0))
    x0, y0, x1, y1 = mask_bbox(part)
    rows, cols = window
    bbox = (x0 + cols.start, y0 + rows.start, x1 + cols.start, y1 + rows.start)
    return replace(region, mask=mask, area=int(part.sum()), bbox=bbox)


def to_image_size(result: RefinedRegion, height: int, width: int) -> RefinedRegion | None:
    """The refined region with its masks at (height, width); None if its coarse mask vanishes."""
    region = resize_region(result.region, (height, width))
    if region.area == 0:
        return None
    refined = result.refined_mask
    if refined is not None:
        refined = resize_mask(refined, (height, width))
    return replace(result, region=region, refined_mask=refined)
