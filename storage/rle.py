"""COCO run-length encoding of boolean masks (pycocotools), as plain `counts` strings."""

from __future__ import annotations

import warnings

import numpy as np
from pycocotools import mask as mask_utils

_AREA_CHUNK = 128
"""pycocotools' `area` overflows on 256 or more RLEs at once with numpy 2.4: call it in chunks."""


def encode_masks(masks: list[np.ndarray], height: int, width: int) -> list[str]:
    """Encode boolean `(H, W)` masks to COCO RLE compressed counts strings, one per mask."""
    if not masks:
        return []
    stack = np.empty((height, width, len(masks)), dtype=np.uint8, order="F")
    for i, mask in enumerate(masks):
        if mask.shape != (height, width):
            raise ValueError(f"mask {i} has shape {mask.shape}, expected {(height, width)}")
        stack[:, :, i] = mask
    return [rle["counts"].decode("ascii") for rle in mask_utils.encode(stack)]


def _rles(counts: list[str], height: int, width: int) -> list[dict]:
    return [{"size": [height, width], "counts": c.encode("ascii")} for c in counts]


def rle_areas(counts: list[str], height: int, width: int) -> np.ndarray:
    """Foreground pixels of each RLE, int64 `(N,)`, computed from the runs (no decoding)."""
    out = np.zeros(len(counts), dtype=np.int64)
    for start in range(0, len(counts), _AREA_CHUNK):
        chunk = _rles(counts[start:start + _AREA_CHUNK], height, width)
        out[start:start + len(chunk)] = mask_utils.area(chunk)
    return out


def decode_masks(counts: list[str], height: int, width: int) -> np.ndarray:
    """Decode RLE counts strings to a boolean `(N, H, W)` array."""
    if not counts:
        return np.zeros((0, height, width), dtype=bool)
    with warnings.catch_warnings():  # pycocotools' own __array__ predates numpy 2's copy=
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="pycocotools")
        stack = mask_utils.decode(_rles(counts, height, width))  # (H, W, N) uint8
    return np.moveaxis(stack, -1, 0).astype(bool)


def rle_dict(counts: str, height: int, width: int) -> dict:
    """The COCO JSON form of one RLE: {"size": [H, W], "counts": str}."""
    return {"size": [int(height), int(width)], "counts": counts}
