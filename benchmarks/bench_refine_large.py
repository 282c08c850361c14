"""SAM refinement of large images: per-region work on a window vs over the whole image.

The refiner's per-region geometry (positive points at distance-transform peaks, the band around
the coarse edge: scipy's Euclidean distance transform) and the labeller's resize of every
region's masks from SAM's working size (longest side 1024) to the photo run on the region's
window; the whole-image computation gives the same points, masks and pixels
(tests/core/test_selftrain_prompts.py, test_selftrain_refiner.py, test_labeling.py). Printed:

1. milliseconds per region for both ways, side by side (alternating, median of `--repeats`):
   the distance transforms on blob regions of `--sizes` images; the resize of a region from
   768 x 1024 to each size larger than that;
2. `ovseg refine-check`'s check with the real MobileSAM on a generated labelled photo of
   `--photo` pixels (40 discs of 5 classes): seconds per image;
3. one `RoundLabeler.label` call on that photo (the tiny random model, every region gated, the
   real MobileSAM refiner): seconds and regions; then the peak memory of the store's RLE
   encoding of their masks (`storage.rle.encode_masks`, tracemalloc).

    uv run python benchmarks/bench_refine_large.py [--sizes 375x500 768x1024 3000x4000]
        [--photo 3000x4000] [--repeats 5] [--part per-region|refine-check|labeller]

`--write-run DIR` instead writes three such photos (DIR/photos), the built-in world (DIR/world)
and DIR/run.yaml: one self-training round of the tiny preset with the photos as its target
(`uv run ovseg run --config DIR/run.yaml`).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from scipy import ndimage

from ovseg_core.labeling import resize_mask
from ovseg_core.selftrain.prompts import edge_distance, peak_points
from ovseg_core.selftrain.refiner import clip_to_band
from storage.rle import encode_masks


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


def side_by_side(calls: dict[str, list], fns: dict, repeats: int) -> tuple[float, float]:
    """Median ms per call of the two functions in `fns` ({"whole": f, "window": g}), each over
    the argument tuples `calls`, alternating."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for args in calls:
                fn(*args)
            times[name].append((time.perf_counter() - start) / len(calls) * 1000)
    whole, window = (statistics.median(times[k]) for k in ("whole", "window"))
    return whole, window


def torch_resize(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The labeller's resize before the windows: torch's bilinear over the whole image."""
    t = torch.from_numpy(mask)[None, None].float()
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0, 0].numpy() > 0.5


def time_per_region(sizes: list[tuple[int, int]], repeats: int) -> None:
    print(f"{'ms per region, median of ' + str(repeats):36s} | whole image | window | ratio")
    for h, w in sizes:
        masks = blobs(h, w, 8)
        calls = [(m, ndimage.binary_dilation(m, iterations=3), max(h, w) / 24) for m in masks]
        whole, window = side_by_side(calls, {"whole": whole_image, "window": windowed}, repeats)
        print(f"{f'distance transforms, {h}x{w}':36s} | {whole:11.1f} | {window:6.1f} | "
              f"{whole / window:4.1f}x", flush=True)
    for h, w in sizes:
        if h * w <= 768 * 1024:
            continue
        calls = [(m, (h, w)) for m in blobs(768, 1024, 8)]
        whole, window = side_by_side(calls, {"whole": torch_resize, "window": resize_mask},
                                     repeats)
        print(f"{f'resize 768x1024 -> {h}x{w}':36s} | {whole:11.1f} | {window:6.1f} | "
              f"{whole / window:4.1f}x", flush=True)


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


def time_labeller(h: int, w: int) -> None:
    from ovseg_core.config import preset
    from ovseg_core.device import pick_runtime
    from ovseg_core.labeling import RoundLabeler
    from ovseg_core.modeling.build import build_model
    from ovseg_core.modeling.sam_encoder import build_sam, default_sam_checkpoint
    from ovseg_core.selftrain import SamRefiner

    with tempfile.TemporaryDirectory() as tmp:
        root = labelled_photo(Path(tmp) / "photo", h, w)
        photo = np.asarray(Image.open(root / "JPEGImages" / "photo.jpg").convert("RGB"))
    model = build_model(preset("tiny", dea_enabled=False), seed=0)
    refiner = SamRefiner(build_sam("vit_t", default_sam_checkpoint("vit_t")))
    labeller = RoundLabeler(model, refiner, ["ground", "a", "b", "c", "d", "e"],
                            pick_runtime("cpu"), threshold=0.0)
    start = time.perf_counter()
    (regions,) = labeller.label([photo], ["photo"])
    print(f"RoundLabeler.label, tiny random model, real MobileSAM, one {h}x{w} photo: "
          f"{time.perf_counter() - start:.1f} s for {len(regions)} regions, all gated")
    masks = [r.region.mask for r in regions]
    tracemalloc.start()
    encode_masks(masks, h, w)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"the store's RLE of their {len(masks)} coarse masks: peak {peak / 1e6:.0f} MB "
          f"(one stack of all of them: {len(masks) * h * w / 1e6:.0f} MB of uint8)")


def write_run(folder: Path, h: int, w: int) -> Path:
    """folder/photos/p{0,1,2}.jpg (`labelled_photo`'s photos), folder/world (the built-in
    world) and folder/run.yaml (one round on the photos, gate 0); returns the config's path."""
    import json
    import shutil

    from ovseg_core.data.synth import world_classes, write_synthetic_dataset

    (folder / "photos").mkdir(parents=True)
    for seed in range(3):
        root = labelled_photo(folder / f"_photo{seed}", h, w, seed=seed)
        shutil.move(root / "JPEGImages" / "photo.jpg", folder / "photos" / f"p{seed}.jpg")
        shutil.rmtree(root)
    write_synthetic_dataset(folder / "world")
    config = folder / "run.yaml"
    config.write_text(
        f"workspace: {folder / 'ws'}\n"
        "data:\n"
        f"  source: {{kind: generic, root: {folder / 'world' / 'source'}, split: train}}\n"
        f"  target: {{kind: images, root: {folder / 'photos'}}}\n"
        f"  target_classes: {json.dumps(world_classes())}\n"
        "self_training: {rounds: 1, gate_threshold: 0.0}\n")
    return config


def size(text: str) -> tuple[int, int]:
    h, w = text.lower().split("x")
    return int(h), int(w)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=size, nargs="+",
                        default=[(375, 500), (768, 1024), (3000, 4000)])
    parser.add_argument("--photo", type=size, default=(3000, 4000))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write-run", type=Path, default=None, metavar="DIR")
    parser.add_argument("--part", nargs="*", choices=["per-region", "refine-check", "labeller"],
                        help="only these parts (default: all); one part alone also prints the "
                             "process's peak RSS")
    args = parser.parse_args()
    if args.write_run is not None:
        config = write_run(args.write_run, *args.photo)
        print(f"now: uv run ovseg run --config {config}")
        return
    parts = {"per-region": lambda: time_per_region(args.sizes, args.repeats),
             "refine-check": lambda: time_photo(*args.photo),
             "labeller": lambda: time_labeller(*args.photo)}
    for name in args.part or list(parts):
        parts[name]()
    if args.part and len(args.part) == 1:  # one part per process: its own peak
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB -> GiB
        print(f"peak RSS of this process ({args.part[0]}): {peak:.2f} GiB")


if __name__ == "__main__":
    main()
