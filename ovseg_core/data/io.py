"""Reading and writing images and label maps, with errors that name the file.

Images at rest are `uint8 (H, W, 3)` RGB; label maps are `uint16 (H, W)` class ids with
`IGNORE_INDEX` (65535). On disk a label map is an 8-bit PNG (ignore stored as 255) when the
vocabulary has fewer than 255 classes, otherwise a 16-bit TIFF (ignore stored as 65535).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ovseg_core.constants import IGNORE_INDEX
from ovseg_core.errors import OvsegError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
LABEL_SUFFIXES = (".png", ".tif", ".tiff")
PNG_IGNORE = 255
"""The ignore value of 8-bit label PNGs written by ovseg (and of 8-bit generic labels)."""


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name (hidden files skipped)."""
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def read_image(path: Path) -> np.ndarray:
    """Read an image file as `uint8 (H, W, 3)` RGB; OvsegError naming the file if unreadable."""
    try:
        with Image.open(path) as img:
            img.load()
            rgb = img.convert("RGB")
    except FileNotFoundError:
        raise OvsegError(f"image not found: {path}") from None
    except Exception as exc:  # PIL raises many types for broken files
        raise OvsegError(f"cannot read image {path}: {exc}") from exc
    return np.asarray(rgb, dtype=np.uint8)


def read_label_raw(path: Path) -> np.ndarray:
    """Read a single-channel label file as stored: `uint8` or `uint16 (H, W)`.

    8-bit PNG (grey or palette) gives uint8; 16-bit PNG / TIFF gives uint16.
    Raises OvsegError naming the file for missing files, colour maps or values above 65535.
    """
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            arr = np.asarray(img)
    except FileNotFoundError:
        raise OvsegError(f"label map not found: {path}") from None
    except Exception as exc:
        raise OvsegError(f"cannot read label map {path}: {exc}") from exc
    if arr.ndim != 2:
        raise OvsegError(
            f"label map {path} has mode {mode} with shape {arr.shape}; expected a "
            "single-channel map of class ids (8-bit or 16-bit PNG/TIFF)"
        )
    if arr.dtype == np.uint8 or arr.dtype == np.uint16:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer) and arr.min() >= 0 and arr.max() <= 65535:
        return arr.astype(np.uint16)
    raise OvsegError(f"label map {path} has values of type {arr.dtype} outside 0..65535")


def label_suffix(num_classes: int) -> str:
    """File suffix ovseg uses for label maps of a vocabulary: '.png' below 255 classes,
    else '.tif'."""
    return ".png" if num_classes < PNG_IGNORE else ".tif"


def write_label(path: Path, label: np.ndarray, num_classes: int) -> Path:
    """Write a `uint16 (H, W)` label map next to `path` with the suffix of `label_suffix`.

    Returns the path written (its suffix replaced). IGNORE_INDEX is stored as 255 in 8-bit PNGs.
    """
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"label map must be (H, W), got {label.shape}")
    out = Path(path).with_suffix(label_suffix(num_classes))
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".png":
        small = np.where(label == IGNORE_INDEX, PNG_IGNORE, label)
        if small.max(initial=0) > PNG_IGNORE:
            raise ValueError(f"class id {small.max()} does not fit an 8-bit PNG")
        Image.fromarray(small.astype(np.uint8), mode="L").save(out, optimize=False)
    else:
        Image.fromarray(label.astype(np.uint16)).save(out, compression="tiff_deflate")
    return out


def decode_ids(raw: np.ndarray, ignore_values: tuple[int, ...], shift: int = 0) -> np.ndarray:
    """Map stored ids to ovseg ids: `raw - shift`, with every value in `ignore_values` -> ignore.

    raw: uint8/uint16 (H, W). Returns uint16 (H, W).
    """
    out = raw.astype(np.int64) - shift
    for value in ignore_values:
        out[raw == value] = IGNORE_INDEX
    return out.astype(np.uint16)


def check_label(label: np.ndarray, num_classes: int, path: Path, image_shape: tuple[int, int],
                image_path: Path) -> None:
    """OvsegError naming the files if the label map's size or values do not fit the image and
    vocabulary."""
    if label.shape != tuple(image_shape):
        raise OvsegError(
            f"label map {path} is {label.shape[0]}x{label.shape[1]} (HxW) but image "
            f"{image_path} is {image_shape[0]}x{image_shape[1]}"
        )
    values = np.unique(label)
    bad = values[(values != IGNORE_INDEX) & (values >= num_classes)]
    if bad.size:
        shown = ", ".join(str(int(v)) for v in bad[:8])
        raise OvsegError(
            f"label map {path} holds class ids outside the vocabulary of {num_classes} "
            f"classes: {shown}{' ...' if bad.size > 8 else ''}"
        )
