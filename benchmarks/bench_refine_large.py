"""SAM refinement of large images: distance transforms on a region's window vs the whole image.

The refiner's per-region geometry (positive points at distance-transform peaks, the band around
the coarse edge) runs scipy's Euclidean distance transform. On the whole image that costs time
in proportion to the image's pixels, for every region; `peak_points` and `clip_to_band` run it
on the region's box instead (the same results: tests/core/test_selftrain_prompts.py and
test_selftrain_refiner.py). Part 1 times both side by side (alternating, median of
`--repeats`) on blob-shaped regions of a few image sizes and prints milliseconds per region and
the ratio. Part 2 runs `ovseg refine-check`'s check with the real MobileSAM on a generated
labelled photo of `--photo` pixels (40 discs of 5 classes) and prints seconds per image.

    uv run python benchmarks/bench_refine_large.py [--sizes 375x500 768x1024 3000x4000]
        [--photo 3000x4000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from ovseg_core.selftrain.prompts import edge_distance, peak_points
from ovseg_core.selftrain.refiner import clip_to_band


def blobs(h: int, w: int, count: int, seed: int = 0) -> list[np.ndarray]:
    """`count` (h, w) bool masks, each a disc of 1/20-1/6 of the longest side."""
    rng = np.random.default_rng(seed)
    yy, xx = np.ogrid[:h, :w]
    out = []
    for _ in range(count):
        r = rng.uniform(1 / 20, 1 / 6) * max(h, w)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        out.append((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r)
    return out


def whole_image(mask: np.ndarray, sam: np.ndarray, width: float) -> None:
    """The same computations as `windowed` over the whole image (as before the windows): two
    peak picks on the depth map, then the band."""
    depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    yy, xx = np.ogrid[: mask.shape[0], : mask.shape[1]]
    for _ in range(2):
        y, x = divmod(int(np.argmax(depth)), mask.shape[1])
        depth = np.where((xx - x) ** 2 + (yy - y) ** 2 <= depth[y, x] ** 2, 0.0, depth)
    np.where(edge_distance(mask) <= width, sam, mask)


def windowed(mask: np.ndarray, sam: np.ndarray, width: float) -> None:
    peak_points(mask, 2)
    clip_to_band(mask, sam, width)


def time_geometry(sizes: list[tuple[int, int]], repeats: int) -> None:
    print("distance transforms per region (2 positive points + the band), ms, median of "
          f"{repeats}")
    print(f"{'image':>11} | {'whole image':>11} | {'window':>8} | ratio")
    for h, w in sizes:
        masks = blobs(h, w, 8)
        sams = [ndimage.binary_dilation(m, iterations=3) for m in masks]
        width = max(h, w) / 24
        times: dict[str, list[float]] = {"whole": [], "window": []}
        for _ in range(repeats):
            for name, fn in (("whole", whole_image), ("window", windowed)):
                start = time.perf_counter()
                for m, s in zip(masks, sams, strict=True):
                    fn(m, s, width)
                times[name].append((time.perf_counter() - start) / len(masks) * 1000)
        whole, window = (statistics.median(times[k]) for k in ("whole", "window"))
        print(f"{h:>5}x{w:<5} | {whole:11.1f} | {window:8.1f} | {whole / window:5.1f}x", flush=True)


def labelled_photo(root: Path, h: int, w: int, seed: int = 0) -> Path:
    """A VOC folder with one (h, w) photo of 40 coloured discs of 5 classes on a green ground."""
    rng = np.random.default_rng(seed)
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    image, label = Image.new("RGB", (w, h), (90, 120, 90)), Image.new("L", (w, h), 0)
    draw_image, draw_label = ImageDraw.Draw(image), ImageDraw.Draw(label)
    side = max(h, w)
    for k in range(40):
        size = int(rng.uniform(1 / 40, 1 / 10) * side)
        x, y = int(rng.integers(0, w - size)), int(rng.integers(0, h - size))
        colour = tuple(int(v) for v in rng.integers(0, 255, 3))
        draw_image.ellipse([x, y, x + size, y + size], fill=colour)
        draw_label.ellipse([x, y, x + size, y + size], fill=1 + k % 5)
    image.save(root / "JPEGImages" / "photo.jpg", quality=90)
    label.save(root / "SegmentationClass" / "photo.png")
    (root / "class_names.txt").write_text("background\na\nb\nc\nd\ne\n")
    return root


def time_photo(h: int, w: int) -> None:
    from ovseg_core.selftrain.refine_check import run_check

    with tempfile.TemporaryDirectory() as tmp:
        root = labelled_photo(Path(tmp) / "photo", h, w)
        (result,) = run_check([root]).values()
    print(f"refine-check, real MobileSAM, one {h}x{w} photo: {result.seconds_per_image:.1f} s "
          f"(encode + decode); coarse {result.coarse_miou:.4f}, refined {result.refined_miou:.4f}")


def size(text: str) -> tuple[int, int]:
    h, w = text.lower().split("x")
    return int(h), int(w)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=size, nargs="+",
                        default=[(375, 500), (768, 1024), (3000, 4000)])
    parser.add_argument("--photo", type=size, default=(3000, 4000))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    time_geometry(args.sizes, args.repeats)
    time_photo(*args.photo)


if __name__ == "__main__":
    main()
