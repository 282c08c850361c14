"""A fourth real labelled image for `ovseg refine-check`: stardist's fluorescence nuclei.

The `stardist` wheel on PyPI ships one real 512 x 512 microscopy image of cell nuclei
(`stardist/data/images/img2d.tif`, 16-bit) with its hand-made instance labels (`mask2d.tif`,
125 nuclei). stardist itself is not a dependency (its numba pin does not resolve with this
project's numpy), so this script downloads the wheel alone (`pip download --no-deps`, about
3 MB) and writes a Pascal-VOC-layout folder that `ovseg refine-check` reads: the image
contrast-stretched between its 1st and 99.8th intensity percentiles (the usual display
normalisation of such images) as a grey JPEG, and the label as class 1 "nucleus" on class 0
"background". It is held out: no refiner setting was chosen on it.

    uv run python benchmarks/nuclei_voc.py out/nuclei
    uv run ovseg refine-check out/nuclei
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

WHEEL = "stardist==0.9.2"
MEMBERS = ("stardist/data/images/img2d.tif", "stardist/data/images/mask2d.tif")


def download_wheel(folder: Path) -> Path:
    """The stardist wheel, downloaded without its dependencies into `folder`."""
    pip = [sys.executable, "-m", "pip"]
    if subprocess.run([*pip, "--version"], capture_output=True).returncode != 0:
        pip = ["uvx", "pip"]  # uv's venvs have no pip
    subprocess.run([*pip, "download", "--no-deps", "--only-binary=:all:", "--platform",
                    "manylinux_2_28_x86_64", "--python-version", "3.11", "-q", "-d", str(folder),
                    WHEEL], check=True)
    return next(folder.glob("stardist-*.whl"))


def stretch(image: np.ndarray, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    """(H, W) uint8 of a (H, W) intensity image, its [low, high] percentiles mapped to 0..255."""
    lo, hi = np.percentile(image, [low, high])
    return (255 * np.clip((image.astype(np.float64) - lo) / max(hi - lo, 1e-9), 0, 1)).astype(
        np.uint8)


def write_voc(wheel: Path, out: Path) -> int:
    """Write out/{class_names.txt, JPEGImages/nuclei.jpg, SegmentationClassPNG/nuclei.png};
    returns the number of labelled nuclei."""
    with zipfile.ZipFile(wheel) as z, tempfile.TemporaryDirectory() as tmp:
        image_tif, mask_tif = (Path(z.extract(m, tmp)) for m in MEMBERS)
        image = np.asarray(Image.open(image_tif))
        instances = np.asarray(Image.open(mask_tif))
    (out / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (out / "SegmentationClassPNG").mkdir(exist_ok=True)
    (out / "class_names.txt").write_text("background\nnucleus\n")
    Image.fromarray(stretch(image)).convert("RGB").save(out / "JPEGImages/nuclei.jpg", quality=95)
    Image.fromarray((instances > 0).astype(np.uint8), mode="L").save(
        out / "SegmentationClassPNG/nuclei.png")
    return len(np.unique(instances)) - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the VOC folder to write (e.g. out/nuclei)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        count = write_voc(download_wheel(Path(tmp)), args.out)
    print(f"wrote {args.out}: 1 image, {count} labelled nuclei; now: "
          f"uv run ovseg refine-check {args.out}")


if __name__ == "__main__":
    main()
