"""Real medical scans with voxel-exact tumour labels for `ovseg refine-check`: pyradiomics' cases.

The `pyradiomics` 3.1.0 source distribution on PyPI (about 34 MB; its wheels lack the data)
ships the test cases of its feature baseline in `data/`: 3-D scans as gzip NRRD volumes with
a hand-segmented lesion label each. Four are used: two contrast MRI brains with a tumour
(`brain1`, `brain2`, 256 x 256 slices) and two lung CTs with a nodule or mass (`lung1`, `lung2`,
512 x 512 slices); `breast1` is left out, being a 45 x 120 crop. From each case the axial
slice with the largest labelled area is taken, its intensities stretched between their 1st
and 99.5th percentiles to a grey JPEG (no clinical window), and the label written as class 1
"lesion" on class 0 "background". The lesions are small (227 to 3412 pixels, about one to
eight cells of a 24 x 24 grid), so the coarse masks are poor by construction. The package is
BSD-3-Clause (its licence file states no separate terms for the data). Held out: no refiner
setting was chosen on it. pip cannot download this sdist without building it, so the file is
fetched from PyPI's simple index (https://pypi.org/simple/pyradiomics/, the JSON form pip
reads) instead, its sha256 checked.

    uv run python benchmarks/radiomics_voc.py out/radiomics
    uv run ovseg refine-check out/radiomics
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import tarfile
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

INDEX = "https://pypi.org/simple/pyradiomics/"  # PyPI's simple index, as JSON (PEP 691)
SDIST = "pyradiomics-3.1.0.tar.gz"
CASES = ("brain1", "brain2", "lung1", "lung2")
JSON_INDEX = "application/vnd.pypi.simple.v1+json"
NRRD_TYPES = {"short": "<i2", "int": "<i4"}


def download_sdist(folder: Path) -> Path:
    """The pyradiomics 3.1.0 sdist, downloaded from PyPI into `folder`, its sha256 checked."""
    request = urllib.request.Request(INDEX, headers={"Accept": JSON_INDEX})
    with urllib.request.urlopen(request) as reply:
        entry = next(f for f in json.load(reply)["files"] if f["filename"] == SDIST)
    path = folder / SDIST
    urllib.request.urlretrieve(urllib.parse.urljoin(INDEX, entry["url"]), path)
    if hashlib.sha256(path.read_bytes()).hexdigest() != entry["hashes"]["sha256"]:
        raise SystemExit(f"{SDIST}: sha256 mismatch")
    return path


def read_nrrd(data: bytes) -> np.ndarray:
    """(Z, Y, X) array of a little-endian, gzip-encoded NRRD volume (all pyradiomics uses)."""
    end = data.index(b"\n\n")
    header = dict(line.split(": ", 1) for line in data[:end].decode().splitlines()[1:]
                  if ": " in line and not line.startswith("#"))
    if header["encoding"] != "gzip" or header.get("endian", "little") != "little":
        raise ValueError(f"unsupported NRRD encoding {header['encoding']}")
    sizes = [int(s) for s in header["sizes"].split()]
    voxels = np.frombuffer(gzip.decompress(data[end + 2:]), dtype=NRRD_TYPES[header["type"]])
    return voxels.reshape(sizes[::-1])


def stretch(image: np.ndarray, low: float = 1.0, high: float = 99.5) -> np.ndarray:
    """(H, W) uint8 of a (H, W) intensity image, its [low, high] percentiles mapped to 0..255."""
    lo, hi = np.percentile(image, [low, high])
    return (255 * np.clip((image.astype(np.float64) - lo) / max(hi - lo, 1e-9), 0, 1)).astype(
        np.uint8)


def largest_slice(volume: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image slice, binary label slice) of the axial slice with the most labelled voxels."""
    z = int((label > 0).sum(axis=(1, 2)).argmax())
    return volume[z], (label[z] > 0).astype(np.uint8)


def write_voc(sdist: Path, out: Path) -> list[int]:
    """Write out/{class_names.txt, JPEGImages/, SegmentationClassPNG/}; returns lesion areas."""
    (out / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (out / "SegmentationClassPNG").mkdir(exist_ok=True)
    (out / "class_names.txt").write_text("background\nlesion\n")
    root = sdist.name.removesuffix(".tar.gz")
    areas = []
    with tarfile.open(sdist) as tar:
        for case in CASES:
            image, label = (read_nrrd(tar.extractfile(f"{root}/data/{case}_{kind}.nrrd").read())
                            for kind in ("image", "label"))
            image, label = largest_slice(image, label)
            Image.fromarray(stretch(image)).convert("RGB").save(
                out / f"JPEGImages/{case}.jpg", quality=95)
            Image.fromarray(label, mode="L").save(out / f"SegmentationClassPNG/{case}.png")
            areas.append(int(label.sum()))
    return areas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the VOC folder to write (e.g. out/radiomics)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        areas = write_voc(download_sdist(Path(tmp)), args.out)
    print(f"wrote {args.out}: {len(CASES)} slices, lesion areas {areas} pixels; now: "
          f"uv run ovseg refine-check {args.out}")


if __name__ == "__main__":
    main()
