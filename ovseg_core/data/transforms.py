"""Training augmentation (random scale, crop, flip, colour jitter) as a pure function of a seed.

`augment_with_geometry(image, label, rng, cfg)` takes the at-rest numpy sample and returns the
model-boundary arrays and the crop's geometry. Everything random comes from the `rng` argument,
so a sample is reproducible from `(seed, sample number)` alone: no worker-process or global RNG
state is involved.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ovseg_core.constants import IGNORE_INDEX


@dataclass(frozen=True)
class AugmentConfig:
    """crop_size: square crop side (px). scale_range: the short side is resized to
    crop_size * U(scale_range) before cropping. flip: random horizontal flip. color_jitter:
    brightness / contrast / saturation factors drawn from U(1 - j, 1 + j)."""

    crop_size: int
    scale_range: tuple[float, float] = (0.5, 2.0)
    flip: bool = True
    color_jitter: float = 0.2


def augment_with_geometry(image: np.ndarray, label: np.ndarray, rng: np.random.Generator,
                          cfg: AugmentConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 (H, W, 3) + uint16 (H, W) -> float32 (3, S, S) in [0, 1] + int64 (S, S), S =
    crop_size (pixels padded in, when the scaled image is smaller than the crop, are
    IGNORE_INDEX), and the crop's geometry: float32 (5,) = (x scale, y scale, top, left, flip),
    scales in scaled px per source px, top/left in scaled px, flip 1.0 when mirrored. Crop pixel
    (y, x) before the flip is source pixel ((y + top) / y scale, (x + left) / x scale)."""
    height, width = label.shape
    scale = rng.uniform(*cfg.scale_range) * cfg.crop_size / min(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    img = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
    lab = np.asarray(Image.fromarray(label).resize(size, Image.NEAREST))
    img, lab, top, left = _random_crop(img, lab, cfg.crop_size, rng)
    flip = bool(cfg.flip and rng.random() < 0.5)
    if flip:
        img, lab = img[:, ::-1], lab[:, ::-1]
    out = img.astype(np.float32) / 255.0
    if cfg.color_jitter > 0:
        out = color_jitter(out, rng, cfg.color_jitter)
    geometry = np.array([size[0] / width, size[1] / height, top, left, float(flip)],
                        dtype=np.float32)
    return np.ascontiguousarray(out.transpose(2, 0, 1)), lab.astype(np.int64), geometry


def to_model_input(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (3, H, W) in [0, 1] (no augmentation)."""
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / 255.0


def color_jitter(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """float32 (H, W, 3) in [0, 1]: brightness, contrast and saturation scaled by
    U(1 +- strength)."""
    b, c, s = rng.uniform(1 - strength, 1 + strength, size=3)
    image = image * b
    image = (image - image.mean()) * c + image.mean()
    grey = image.mean(axis=2, keepdims=True)
    image = (image - grey) * s + grey
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def _random_crop(img: np.ndarray, lab: np.ndarray, size: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray, int, int]:
    height, width = lab.shape
    top = int(rng.integers(0, max(height - size, 0) + 1))
    left = int(rng.integers(0, max(width - size, 0) + 1))
    img = img[top:top + size, left:left + size]
    lab = lab[top:top + size, left:left + size]
    if img.shape[:2] != (size, size):
        pad_img = np.zeros((size, size, 3), dtype=img.dtype)
        pad_lab = np.full((size, size), IGNORE_INDEX, dtype=lab.dtype)
        pad_img[:img.shape[0], :img.shape[1]] = img
        pad_lab[:lab.shape[0], :lab.shape[1]] = lab
        img, lab = pad_img, pad_lab
    return img, lab, top, left
