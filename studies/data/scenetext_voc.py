"""Real street photos with pixel-exact text masks for `ovseg refine-check`: OpenCV's scene text.

Debian's `opencv-doc` package (4.6.0+dfsg-12, about 96 MB; the samples of OpenCV and
opencv_contrib) ships, for its `text` module's segmented-word recognition sample, five real 640
x 480 photos of signs (`examples/text/scenetext_segmented_wordNN.jpg`, NN = 01..05: "HOTEL",
"Stationery Box", "Private Hire", a small "FOSTER'S", "MULTIMEDIA PROJECTOR") each with a binary
pixel mask of the strokes of ONE word (`..._mask.png`; they follow the letter edges, as `ovseg
refine-check out/scenetext --pictures DIR` shows). Only that word is labelled: other text in the
photo is background. The package states no separate licence for these images; its copyright file
gives the OpenCV tree as Apache-2.0 AND BSD-3-Clause. This script fetches the .deb alone
(`apt-get download`), takes the ten files out of it and writes a Pascal-VOC-layout folder: class
1 "text" on class 0 "background". It is held out: no refiner setting was chosen on it. Text
strokes are thin (words 16 to 75 pixels high), so this is a hard case for a 24 x 24 grid and for
SAM alike: the two small words (848 and 2197 pixels, 18 and 16 pixels high) vanish from the
coarse mask, scoring 0 coarse and refined.

    uv run python studies/data/scenetext_voc.py out/scenetext
    uv run ovseg refine-check out/scenetext
"""

from __future__ import annotations

import argparse
import subprocess
import tarfile
import tempfile
from pathlib import Path

from ovseg_core.data.voc_sets import SCENETEXT_WORDS as WORDS
from ovseg_core.data.voc_sets import write_scenetext_voc

PACKAGE = "opencv-doc=4.6.0+dfsg-12"
TEXT_DIR = "./usr/share/doc/opencv-doc/examples/text/"


def download_deb(folder: Path) -> Path:
    """The opencv-doc .deb, downloaded alone (no install) into `folder`."""
    subprocess.run(["apt-get", "download", "-q", PACKAGE], cwd=folder, check=True,
                   capture_output=True)
    return next(folder.glob("opencv-doc_*.deb"))


def read_members(deb: Path) -> dict[str, bytes]:
    """{file name: bytes} of the segmented-word photos and masks inside the .deb."""
    wanted = {TEXT_DIR + w + ext for w in WORDS for ext in (".jpg", "_mask.png")}
    tar_stream = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)],
                                  stdout=subprocess.PIPE)
    found = {}
    with tarfile.open(fileobj=tar_stream.stdout, mode="r|") as tar:
        for member in tar:
            if member.name in wanted:
                found[Path(member.name).name] = tar.extractfile(member).read()
    tar_stream.wait()
    if len(found) != len(wanted):
        raise SystemExit(f"{deb} lacks {sorted(wanted - {TEXT_DIR + n for n in found})}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the VOC folder to write (e.g. out/scenetext)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pixels = write_scenetext_voc(read_members(download_deb(Path(tmp))), args.out)
    print(f"wrote {args.out}: {len(WORDS)} images, {pixels} text pixels; now: "
          f"uv run ovseg refine-check {args.out}")


if __name__ == "__main__":
    main()
