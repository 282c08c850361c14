"""COCO run-length encoding of boolean masks (pycocotools), as plain `counts` strings: the one
module of `storage` that calls pycocotools."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from pycocotools import mask as mask_utils

_AREA_CHUNK = 128
"""pycocotools' `area` overflows on 256 or more RLEs at once with numpy 2.4: call it in chunks."""


_ENCODE_PIXELS = 16 * 1024 * 1024
"""Masks are stacked for pycocotools' `encode` in groups of at most this many pixels (16 MiB of
uint8; at least one mask): one stack of the 73 regions of a 12-megapixel photo is 876 MB, in
groups the encoding peaks at 24 MB (`benchmarks/bench_refine_large.py --part labeller`)."""


def encode_masks(masks: list[np.ndarray], height: int, width: int) -> list[str]:
    """Encode boolean `(H, W)` masks to COCO RLE compressed counts strings, one per mask."""
    for i, mask in enumerate(masks):
        if mask.shape != (height, width):
            raise ValueError(f"mask {i} has shape {mask.shape}, expected {(height, width)}")
    group = max(1, _ENCODE_PIXELS // max(height * width, 1))
    out: list[str] = []
    for start in range(0, len(masks), group):
        part = masks[start:start + group]
        stack = np.empty((height, width, len(part)), dtype=np.uint8, order="F")
        for i, mask in enumerate(part):
            stack[:, :, i] = mask
        out += [rle["counts"].decode("ascii") for rle in mask_utils.encode(stack)]
    return out


def _rles(counts: list[str], height: int, width: int) -> list[dict]:
    return [{"size": [height, width], "counts": c.encode("ascii")} for c in counts]


def rle_areas(counts: list[str], height: int, width: int) -> np.ndarray:
    """Foreground pixels of each RLE, int64 `(N,)`, computed from the runs (no decoding)."""
    out = np.zeros(len(counts), dtype=np.int64)
    for start in range(0, len(counts), _AREA_CHUNK):
        chunk = _rles(counts[start:start + _AREA_CHUNK], height, width)
        out[start:start + len(chunk)] = mask_utils.area(chunk)
    return out


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence the DeprecationWarning pycocotools' own arrays raise under numpy 2 (their
    `__array__` predates its `copy=` keyword); nothing else."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="pycocotools")
        yield


def decode_masks(counts: list[str], height: int, width: int) -> np.ndarray:
    """Decode RLE counts strings to a boolean `(N, H, W)` array."""
    if not counts:
        return np.zeros((0, height, width), dtype=bool)
    with _quiet():
        stack = mask_utils.decode(_rles(counts, height, width))  # (H, W, N) uint8
    return np.moveaxis(stack, -1, 0).astype(bool)


def rle_boxes(counts: list[str], height: int, width: int) -> np.ndarray:
    """Bounding box [x, y, w, h] (pixels, float64) of each RLE, `(N, 4)`, from the runs."""
    if not counts:
        return np.zeros((0, 4))
    with _quiet():
        return np.asarray(mask_utils.toBbox(_rles(counts, height, width)), dtype=np.float64)


def polygons_rle(polygons: list[list[float]], height: int, width: int) -> dict | None:
    """The COCO RLE (`{"size", "counts": bytes}`) of the pixels the flat [x0, y0, x1, y1, ...]
    polygons enclose together; polygons of fewer than three points are skipped (None if none
    is left)."""
    polygons = [p for p in polygons if len(p) >= 6]
    if not polygons:
        return None
    with _quiet():
        return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))


def uncompressed_rle(segmentation: dict, height: int, width: int) -> dict:
    """COCO's uncompressed RLE (`counts` a list of run lengths) as a compressed one."""
    with _quiet():
        return mask_utils.frPyObjects(segmentation, height, width)


def rle_dict(counts: str, height: int, width: int) -> dict:
    """The COCO JSON form of one RLE: {"size": [H, W], "counts": str}."""
    return {"size": [int(height), int(width)], "counts": counts}
