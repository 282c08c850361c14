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

    uv run python studies/data/radiomics_voc.py out/radiomics
    uv run ovseg refine-check out/radiomics
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from voc_sources import pypi_file

from ovseg_core.data.voc_sets import RADIOMICS_CASES as CASES
from ovseg_core.data.voc_sets import RADIOMICS_SDIST as SDIST
from ovseg_core.data.voc_sets import write_radiomics_voc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the VOC folder to write (e.g. out/radiomics)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        areas = write_radiomics_voc(pypi_file("pyradiomics", SDIST, Path(tmp)), args.out)
    print(f"wrote {args.out}: {len(CASES)} slices, lesion areas {areas} pixels; now: "
          f"uv run ovseg refine-check {args.out}")


if __name__ == "__main__":
    main()
