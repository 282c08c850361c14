"""What the `*_voc.py` converters share: fetching one package file from PyPI, the grey
display stretch of scan intensities, and the Pascal VOC folder `ovseg refine-check` reads."""

from __future__ import annotations

import hashlib
import json
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

JSON_INDEX = "application/vnd.pypi.simple.v1+json"  # PyPI's simple index as JSON (PEP 691)


def pypi_file(project: str, filename: str, folder: Path) -> Path:
    """Download `filename` (an sdist or wheel) of `project` from PyPI's simple index into
    `folder`, its sha256 checked against the index. For files pip cannot fetch here (an sdist
    whose metadata does not build, a package that needs a newer Python)."""
    index = f"https://pypi.org/simple/{project}/"
    request = urllib.request.Request(index, headers={"Accept": JSON_INDEX})
    with urllib.request.urlopen(request) as reply:
        entry = next((f for f in json.load(reply)["files"] if f["filename"] == filename), None)
    if entry is None:
        raise SystemExit(f"{filename} is not in {index}")
    path = folder / filename
    urllib.request.urlretrieve(urllib.parse.urljoin(index, entry["url"]), path)
    if hashlib.sha256(path.read_bytes()).hexdigest() != entry["hashes"]["sha256"]:
        raise SystemExit(f"{filename}: sha256 mismatch")
    return path


def stretch(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """(H, W) uint8 of a (H, W) intensity image, its [low, high] percentiles mapped to 0..255
    (the usual display normalisation of microscopy and scan intensities)."""
    lo, hi = np.percentile(image, [low, high])
    return (255 * np.clip((image.astype(np.float64) - lo) / max(hi - lo, 1e-9), 0, 1)).astype(
        np.uint8)


def voc_folder(out: Path, class_names: list[str] | str) -> Path:
    """Create out/{JPEGImages, SegmentationClassPNG}/ and out/class_names.txt (a list of names,
    or a class_names.txt's text as shipped); returns `out`."""
    (out / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (out / "SegmentationClassPNG").mkdir(exist_ok=True)
    text = class_names if isinstance(class_names, str) else "".join(f"{n}\n" for n in class_names)
    (out / "class_names.txt").write_text(text)
    return out


def save_label(out: Path, name: str, label: np.ndarray) -> None:
    """Write out/SegmentationClassPNG/name.png: (H, W) class ids as a grey uint8 PNG."""
    Image.fromarray(label.astype(np.uint8), mode="L").save(
        out / f"SegmentationClassPNG/{name}.png")


def save_pair(out: Path, name: str, grey_or_rgb: np.ndarray, label: np.ndarray) -> None:
    """Write out/JPEGImages/name.jpg (quality 95, grey made RGB) and `save_label`."""
    Image.fromarray(grey_or_rgb).convert("RGB").save(out / f"JPEGImages/{name}.jpg", quality=95)
    save_label(out, name, label)
