"""A fourth real labelled image for `ovseg refine-check`: stardist's fluorescence nuclei.

The `stardist` wheel on PyPI ships one real 512 x 512 microscopy image of cell nuclei
(`stardist/data/images/img2d.tif`, 16-bit) with its hand-made instance labels (`mask2d.tif`,
125 nuclei). stardist itself is not a dependency (its numba pin does not resolve with this
project's numpy), so this script downloads the wheel alone (`pip download --no-deps`, about
3 MB) and writes a Pascal-VOC-layout folder that `ovseg refine-check` reads: the image
contrast-stretched between its 1st and 99.8th intensity percentiles (the usual display
normalisation of such images) as a grey JPEG, and the label as class 1 "nucleus" on class 0
"background". It is held out: no refiner setting was chosen on it.

    uv run python studies/data/nuclei_voc.py out/nuclei
    uv run ovseg refine-check out/nuclei
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from ovseg_core.data.voc_sets import write_nuclei_voc

WHEEL = "stardist==0.9.2"


def download_wheel(folder: Path) -> Path:
    """The stardist wheel, downloaded without its dependencies into `folder`."""
    pip = [sys.executable, "-m", "pip"]
    if subprocess.run([*pip, "--version"], capture_output=True).returncode != 0:
        pip = ["uvx", "pip"]  # uv's venvs have no pip
    subprocess.run([*pip, "download", "--no-deps", "--only-binary=:all:", "--platform",
                    "manylinux_2_28_x86_64", "--python-version", "3.11", "-q", "-d", str(folder),
                    WHEEL], check=True)
    return next(folder.glob("stardist-*.whl"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the VOC folder to write (e.g. out/nuclei)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        count = write_nuclei_voc(download_wheel(Path(tmp)), args.out)
    print(f"wrote {args.out}: 1 image, {count} labelled nuclei; now: "
          f"uv run ovseg refine-check {args.out}")


if __name__ == "__main__":
    main()
