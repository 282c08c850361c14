"""Shard write throughput of `Workspace.write_shard` against the raw libraries.

Raw = what any writer must do for the same data: pycocotools encode of every coarse and
refined mask (one call per image, as ours) + one pyarrow table of the same columns written
to one local Parquet file. Ours adds: validation, RLE areas, casting to the declared schema,
a second (images) file, temporary names + renames, and the manifest entry.
Target: overhead under 25 %. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_storage_write.py [--images 64] [--regions 8] [--size 512]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pycocotools import mask as mask_utils

from storage.records import ImageRegions, RegionRecord
from storage.results import figure, record
from storage.workspace import Workspace


def make_images(n_images: int, n_regions: int, size: int, seed: int = 0) -> list[ImageRegions]:
    """Images with elliptical blob regions; every other region has a refined mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = []
    for i in range(n_images):
        regions = []
        for k in range(n_regions):
            cy, cx = rng.uniform(0, size, 2)
            ry, rx = rng.uniform(size / 16, size / 4, 2)
            coarse = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
            ys, xs = np.nonzero(coarse) if coarse.any() else ([0], [0])
            refined = np.roll(coarse, 2, axis=0) if k % 2 == 0 else None
            regions.append(RegionRecord(
                class_id=int(rng.integers(0, 150)), class_name="thing", confidence=0.95,
                gated=True, sam_iou=0.9 if refined is not None else None,
                agreement_iou=0.8 if refined is not None else None, accepted=refined is not None,
                paints="refined" if refined is not None else "coarse",
                coarse_mask=coarse, refined_mask=refined,
                bbox=(int(min(xs)), int(min(ys)), int(max(xs)) + 1, int(max(ys)) + 1)))
        images.append(ImageRegions(f"images/{i:05d}.jpg", size, size, 0.9, "c" * 64, regions))
    return images


def _encode(masks: list[np.ndarray], size: int) -> list[bytes]:
    stack = np.empty((size, size, len(masks)), dtype=np.uint8, order="F")
    for i, m in enumerate(masks):
        stack[:, :, i] = m
    return [r["counts"] for r in mask_utils.encode(stack)]


def raw_write(images: list[ImageRegions], path: str) -> None:
    """pycocotools encode + one pyarrow table of the same columns + one Parquet write."""
    cols: dict[str, list] = {k: [] for k in (
        "round", "shard", "image_id", "region_id", "class_id", "class_name", "confidence",
        "gate_threshold", "gated", "sam_iou", "agreement_iou", "accepted", "paints", "bbox_x0",
        "bbox_y0",
        "bbox_x1", "bbox_y1", "image_height", "image_width", "checkpoint_sha256", "coarse_rle",
        "refined_rle")}
    for im in images:
        coarse = _encode([r.coarse_mask for r in im.regions], im.height)
        refined = iter(_encode([r.refined_mask for r in im.regions if r.refined_mask is not None],
                               im.height))
        for k, r in enumerate(im.regions):
            for name, value in (("round", 1), ("shard", 0), ("image_id", im.image_id),
                                ("region_id", k), ("class_id", r.class_id),
                                ("class_name", r.class_name), ("confidence", r.confidence),
                                ("gate_threshold", im.gate_threshold), ("gated", r.gated),
                                ("sam_iou", r.sam_iou), ("agreement_iou", r.agreement_iou),
                                ("accepted", r.accepted), ("paints", r.paints),
                                ("bbox_x0", r.bbox[0]),
                                ("bbox_y0", r.bbox[1]), ("bbox_x1", r.bbox[2]),
                                ("bbox_y1", r.bbox[3]), ("image_height", im.height),
                                ("image_width", im.width),
                                ("checkpoint_sha256", im.checkpoint_sha256),
                                ("coarse_rle", coarse[k].decode()),
                                ("refined_rle", next(refined).decode()
                                 if r.refined_mask is not None else None)):
                cols[name].append(value)
    pq.write_table(pa.table(cols), path)


def best_of(fn, repeats: int) -> float:
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--regions", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    images = make_images(args.images, args.regions, args.size)
    rows = args.images * args.regions
    masks = sum(1 + (r.refined_mask is not None) for im in images for r in im.regions)
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(f"{tmp}/ws")
        ours = best_of(lambda i: ws.write_shard(1, i, f"key{i}", images), args.repeats)
        raw = best_of(lambda i: raw_write(images, f"{tmp}/raw{i}.parquet"), args.repeats)
    print(f"shard: {args.images} images {args.size}x{args.size}, {rows} rows, {masks} masks; "
          f"best of {args.repeats}")
    print(f"raw pycocotools + pyarrow : {raw * 1e3:8.1f} ms  {rows / raw:9.0f} rows/s  "
          f"{masks / raw:9.0f} masks/s")
    print(f"Workspace.write_shard     : {ours * 1e3:8.1f} ms  {rows / ours:9.0f} rows/s  "
          f"{masks / ours:9.0f} masks/s")
    print(f"ratio ours/raw: {ours / raw:.3f} (overhead {100 * (ours / raw - 1):+.1f} %, "
          f"target < +25 %)")
    record("storage_write", [
        figure("Workspace.write_shard / raw pycocotools + pyarrow", round(ours / raw, 3), "x",
               "< 1.25"),
        figure("write_shard", round(rows / ours), "rows/s"),
        figure("shard", f"{args.images} images {args.size}x{args.size}, {rows} rows")],
        title="Shard write vs the raw libraries")


if __name__ == "__main__":
    main()
