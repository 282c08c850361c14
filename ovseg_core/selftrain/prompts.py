"""SAM prompts for coarse regions, in SAM's resized-and-padded input frame.

SAM sees an image of size (h, w) resized so its longest side is S (= `image_size`, 1024 for
real SAMs) to (nh, nw), then padded bottom-right to S x S. Prompt coordinates live in that S x S
frame, in SAM's pixel-index convention: the prompt encoder adds 0.5 (pixel centre) before
normalising by S. `SamFrame` maps image pixels into that frame:

- points (pixel indices): centre of image pixel p lands at the centre of the same spot in the
  resized image, q = (p + 0.5) * scale - 0.5;
- boxes (XYXY inclusive-exclusive image pixels): edges map to edges, so the first corner is the
  frame pixel x0 * scale and the second the last covered frame pixel x1 * scale - 1;
- mask prompts: the mask (binary, or ramped across its edge: `soft_mask`) is resized to
  (nh, nw), padded to S x S with "outside", resized to (S/4, S/4) and turned into logits in
  +/- `mask_logit` (soft at the edges).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

from ovseg_core.modeling.sam_encoder import resize_longest_side
from ovseg_core.selftrain.regions import Region, around

POINT_PAD_LABEL = -1
"""SAM's label for "not a point": pads prompts with fewer points than the batch maximum."""


@dataclass(frozen=True)
class PromptSettings:
    """How a coarse region becomes a SAM prompt.

    positive_points: points at distance-transform peaks inside the region (the first is the
        deepest pixel; later ones are the deepest pixels outside discs around earlier ones).
    negative_points: at most this many points at distance-transform peaks of (box minus region),
        each only where that background pocket is deep: distance >= `negative_min_depth` x the
        region's own peak distance (so thin slivers along the edge get no negative point).
    box_margin: the box prompt is the region's box grown on each side by this fraction of the
        image's longest side (clipped to the image). Default 1/24 = one cell of the 24 x 24
        cost volume, the resolution the coarse regions come from: their edges can be off by
        that much, and a tight box keeps SAM from reaching the object's true edge.
    mask_logit: magnitude of the soft mask prompt's logits (method.md: about 20).
    mask_ramp: 0 gives the mask prompt +/- `mask_logit` on either side of the region's edge;
        > 0 ramps the logits linearly with the signed distance to the edge, reaching
        +/- `mask_logit` at this fraction of the image's longest side (a distance-based soft
        prompt in the spirit of SAMRefiner's Gaussian-style mask; measured no better:
        studies/refine_quality.py).
    use_box / use_mask: include the box / the soft mask prompt.
    """

    positive_points: int = 2
    negative_points: int = 1
    negative_min_depth: float = 0.5
    box_margin: float = 1 / 24
    mask_logit: float = 20.0
    mask_ramp: float = 0.0
    use_box: bool = True
    use_mask: bool = True


@dataclass(frozen=True)
class SamFrame:
    """Geometry of one image in SAM's input frame: image (h, w) -> resized (nh, nw) -> S x S."""

    height: int
    width: int
    image_size: int

    @property
    def resized(self) -> tuple[int, int]:
        """(nh, nw): the image size after SAM's longest-side resize."""
        return resize_longest_side(self.height, self.width, self.image_size)

    @property
    def scale(self) -> tuple[float, float]:
        """(sx, sy): resized / original size along x and y (differ slightly by rounding)."""
        nh, nw = self.resized
        return nw / self.width, nh / self.height

    def points(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) image pixel indices (x, y) -> frame pixel indices (float)."""
        sx, sy = self.scale
        out = np.asarray(xy, dtype=np.float64).copy()
        out[..., 0] = (out[..., 0] + 0.5) * sx - 0.5
        out[..., 1] = (out[..., 1] + 0.5) * sy - 0.5
        return out

    def boxes(self, xyxy: np.ndarray) -> np.ndarray:
        """(..., 4) XYXY inclusive-exclusive image boxes -> frame corner pixel indices (float)."""
        sx, sy = self.scale
        b = np.asarray(xyxy, dtype=np.float64)
        return np.stack([b[..., 0] * sx, b[..., 1] * sy,
                         b[..., 2] * sx - 1.0, b[..., 3] * sy - 1.0], axis=-1)

    def mask_prompt(self, masks: Tensor, logit: float) -> Tensor:
        """(M, h, w) bool/float [0, 1] masks -> (M, 1, S/4, S/4) logits in +/- `logit`.

        The padding is "outside" (-logit).
        """
        nh, nw = self.resized
        s = self.image_size
        m = masks.float()[:, None]
        m = F.interpolate(m, size=(nh, nw), mode="bilinear", align_corners=False)
        m = F.pad(m, (0, s - nw, 0, s - nh))
        m = F.interpolate(m, size=(s // 4, s // 4), mode="area")
        return (2.0 * m - 1.0) * logit

    def masks_to_image(self, low_res: Tensor) -> Tensor:
        """(M, K, S/4, S/4) decoder logits -> (M, K, h, w) logits (SAM's own postprocessing)."""
        nh, nw = self.resized
        s = self.image_size
        x = F.interpolate(low_res, size=(s, s), mode="bilinear", align_corners=False)
        x = x[..., :nh, :nw]
        return F.interpolate(x, size=(self.height, self.width), mode="bilinear",
                             align_corners=False)


@dataclass
class RegionPrompts:
    """Prompts for M regions in the S x S frame, ready for SAM's prompt encoder.

    points: (M, P, 2) float frame coordinates (x, y); labels: (M, P) 1 positive, 0 negative,
    -1 padding. boxes: (M, 4) frame XYXY or None. masks: (M, 1, S/4, S/4) logits or None.
    """

    points: Tensor
    labels: Tensor
    boxes: Tensor | None
    masks: Tensor | None

    def select(self, index: slice | Tensor) -> RegionPrompts:
        """The prompts of a subset of the regions."""
        return RegionPrompts(self.points[index], self.labels[index],
                             None if self.boxes is None else self.boxes[index],
                             None if self.masks is None else self.masks[index])


def peak_points(mask: np.ndarray, count: int) -> list[tuple[int, int]]:
    """Up to `count` (x, y) pixels of `mask` at distance-transform peaks, deepest first.

    After each pick, a disc of radius = its depth around it is excluded from later picks, so
    extra points go to other parts of the region. The image border counts as outside. Computed
    on the mask's box (`around`), which gives the same points as the whole image: every pixel
    outside the box is outside the mask, and the box's edge is no farther from a pixel inside.
    """
    window = around(mask, 0)
    if window is None:
        return []
    rows, cols = window
    depth = ndimage.distance_transform_edt(np.pad(mask[window], 1))[1:-1, 1:-1]
    picks: list[tuple[int, int]] = []
    yy, xx = np.ogrid[: depth.shape[0], : depth.shape[1]]
    for _ in range(count):
        flat = int(np.argmax(depth))  # the first peak in row-major order, as on the whole image
        y, x = divmod(flat, depth.shape[1])
        radius = depth[y, x]
        if radius <= 0:
            break
        picks.append((x + cols.start, y + rows.start))
        depth = np.where((xx - x) ** 2 + (yy - y) ** 2 <= radius**2, 0.0, depth)
    return picks


def edge_distance(mask: np.ndarray) -> np.ndarray:
    """(H, W) float distance (px) of every pixel to the edge of bool `mask` (H, W).

    Inside: distance to the nearest outside pixel; outside: to the nearest inside pixel (so
    the pixels on both sides of the edge are at distance 1). The image border is no edge.
    """
    inside = ndimage.distance_transform_edt(mask)
    outside = ndimage.distance_transform_edt(~mask) if mask.any() else np.full(mask.shape, np.inf)
    return np.where(mask, inside, outside)


def negative_points(region: Region, count: int, min_depth: float) -> list[tuple[int, int]]:
    """Up to `count` (x, y) negative points in deep pockets of the box that are not region.

    A pocket qualifies when its distance-transform peak is at least `min_depth` x the region's
    own peak depth (depths measured inside the box, box edges counting as boundary).
    """
    if count <= 0:
        return []
    x0, y0, x1, y1 = region.bbox
    inside = region.mask[y0:y1, x0:x1]
    region_depth = ndimage.distance_transform_edt(np.pad(inside, 1)).max()
    picks = peak_points(~inside, count)
    outside_depth = ndimage.distance_transform_edt(np.pad(~inside, 1))[1:-1, 1:-1]
    return [(x + x0, y + y0) for x, y in picks
            if outside_depth[y, x] >= max(min_depth * region_depth, 1.0)]


def soft_mask(mask: np.ndarray, ramp: float) -> np.ndarray:
    """(H, W) float32 in [0, 1] from a bool mask: 1 inside, 0 outside, or a linear ramp.

    ramp (px): 0 keeps the mask binary; otherwise the value is 0.5 + 0.5 x clip(d / ramp, -1, 1)
    with d the signed distance to the edge (> 0 inside, `edge_distance`), so the pixels next to
    the edge get 0.5 +/- 0.5 / ramp and pixels `ramp` px or more from it are 1 or 0.
    """
    if ramp <= 0:
        return mask.astype(np.float32)
    signed = np.where(mask, 1.0, -1.0) * edge_distance(mask)
    return (0.5 + 0.5 * np.clip(signed / ramp, -1.0, 1.0)).astype(np.float32)


def grow_boxes(regions: list[Region], frame: SamFrame, margin: float) -> np.ndarray:
    """(M, 4) XYXY inclusive-exclusive boxes of `regions`, grown by `margin` x longest side."""
    boxes = np.array([r.bbox for r in regions], dtype=np.float64).reshape(-1, 4)
    pad = round(margin * max(frame.height, frame.width))
    boxes += np.array([-pad, -pad, pad, pad])
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, frame.width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, frame.height)
    return boxes


def build_prompts(regions: list[Region], frame: SamFrame, settings: PromptSettings,
                  device: torch.device | str = "cpu") -> RegionPrompts:
    """Prompts for `regions` (all of one image), as tensors on `device`."""
    per_region = []
    for r in regions:
        pos = peak_points(r.mask, settings.positive_points)
        neg = negative_points(r, settings.negative_points, settings.negative_min_depth)
        per_region.append([(p, 1) for p in pos] + [(p, 0) for p in neg])
    width = max(settings.positive_points + settings.negative_points, 1)  # fixed: batch-independent
    coords = np.zeros((len(regions), width, 2), dtype=np.float64)
    labels = np.full((len(regions), width), POINT_PAD_LABEL, dtype=np.int64)
    for i, pts in enumerate(per_region):
        for j, (xy, label) in enumerate(pts):
            coords[i, j] = xy
            labels[i, j] = label
    coords = frame.points(coords)
    boxes = masks = None
    if settings.use_box:
        boxes = torch.as_tensor(frame.boxes(grow_boxes(regions, frame, settings.box_margin)),
                                dtype=torch.float32, device=device)
    if settings.use_mask:  # one region at a time (all of a large photo's at once: gigabytes)
        ramp = settings.mask_ramp * max(frame.height, frame.width)
        s = frame.image_size // 4
        masks = torch.cat([torch.zeros((0, 1, s, s), device=device)] + [
            frame.mask_prompt(torch.as_tensor(soft_mask(r.mask, ramp), device=device)[None],
                              settings.mask_logit) for r in regions])
    return RegionPrompts(points=torch.as_tensor(coords, dtype=torch.float32, device=device),
                         labels=torch.as_tensor(labels, device=device), boxes=boxes, masks=masks)
