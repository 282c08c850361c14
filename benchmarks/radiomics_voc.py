"""Real medical scans with voxel-exact tumour labels for `ovseg refine-check`: pyradiomics' cases.

The `pyradiomics` 3.1.0 source distribution on PyPI (about 34 MB; its wheels lack the data)
ships the test cases of its feature baseline in `data/`: 3-D scans as gzip NRRD volumes with
a segmented lesion label each. Four are used: two MRI brains with a tumour
(`brain1`, `brain2`, 256 x 256 slices) and two lung CTs with a nodule or mass (`lung1`, `lung2`,
512 x 512 slices); `breast1` is left out, being a 45 x 120 crop. From each case the axial
slice with the largest labelled area is taken, its intensities stretched between their 1st
and 99.5th percentiles to a grey JPEG (no clinical window), and the label written as class 1
"lesion" on class 0 "background". The lesions are small (227 to 3412 pixels, from under one to
about nine cells of a 24 x 24 grid; lung1's nodule vanishes from the grid). The package is
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
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from voc_sources import pypi_file, save_pair, stretch, voc_folder

SDIST = "pyradiomics-3.1.0.tar.gz"
CASES = ("brain1", "brain2", "lung1", "lung2")
NRRD_TYPES = {"short": "<i2", "int": "<i4"}


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


def largest_slice(volume: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image slice, binary label slice) of the axial slice with the most labelled voxels."""
    z = int((label > 0).sum(axis=(1, 2)).argmax())
    return volume[z], (label[z] > 0).astype(np.uint8)


def write_voc(sdist: Path, out: Path) -> list[int]:
    """Write out/{class_names.txt, JPEGImages/, SegmentationClassPNG/}; returns lesion areas."""
    voc_folder(out, ["background", "lesion"])
    root = sdist.name.removesuffix(".tar.gz")
    areas = []
    with tarfile.open(sdist) as tar:
        for case in CASES:
            image, label = (read_nrrd(tar.extractfile(f"{root}/data/{case}_{kind}.nrrd").read())
                            for kind in ("image", "label"))
            image, label = largest_slice(image, label)
            save_pair(out, case, stretch(image, 1.0, 99.5), label)
            areas.append(int(label.sum()))
    return areas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the VOC folder to write (e.g. out/radiomics)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        areas = write_voc(pypi_file("pyradiomics", SDIST, Path(tmp)), args.out)
    print(f"wrote {args.out}: {len(CASES)} slices, lesion areas {areas} pixels; now: "
          f"uv run ovseg refine-check {args.out}")


if __name__ == "__main__":
    main()
