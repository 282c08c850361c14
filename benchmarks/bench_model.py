"""STSeg inference benchmark: per-image latency and peak memory per preset and batch size.

    .venv/bin/python benchmarks/bench_model.py --presets tiny,mobile,paper --batch-sizes 1,2

Runs on the device `pick_runtime` chooses (bf16 autocast on GPU). Weights are random
(`build_skeleton`): speed does not depend on their values, and no weight file is needed. The
text embeddings are random unit vectors (N, 80, D), so the frozen text tower is not timed (it
runs once per vocabulary). On a GPU the paper preset also prints its achieved FLOP/s and the
fraction of the GPU's peak bf16 FLOP/s, using the issue's FLOP counts per image.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

import torch
import torch.nn.functional as F

from ovseg_core.config import preset
from ovseg_core.device import pick_runtime
from ovseg_core.modeling.build import build_skeleton
from storage.results import figure, record

PAPER_GFLOP_PER_IMAGE = 361.0 + 972.0  # ConvNeXt-B at 768 + SAM ViT-B at 1024
PAPER_DECODER_GFLOP_PER_CLASS = 3.35
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "A6000": 155.0, "L40S": 362.0}
"""Dense bf16 tensor-core peaks (no sparsity), by substring of the GPU name."""


def paper_gflop(num_classes: int) -> float:
    """FLOPs per image of the paper preset, in GFLOP."""
    return PAPER_GFLOP_PER_IMAGE + PAPER_DECODER_GFLOP_PER_CLASS * num_classes


def peak_tflops(device: torch.device) -> float | None:
    """The GPU's peak dense bf16 TFLOP/s if known."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated (CUDA) or the process's peak RSS (CPU), in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_one(name: str, batch: int, num_classes: int, iters: int, warmup: int, runtime,
              top_k: int | None) -> dict:
    """Time `iters` forward passes of preset `name` at batch `batch`; returns the figures."""
    device = runtime.device
    torch.manual_seed(0)
    model = build_skeleton(preset(name)).to(device).eval()
    size = model.config.input_size
    text = F.normalize(torch.randn(num_classes, 80, model.clip_text.embed_dim, device=device),
                       dim=-1)
    images = torch.rand(batch, 3, size, size, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with torch.no_grad(), runtime.autocast():
        for _ in range(warmup):
            model(images, text, top_k=top_k)
        sync(device)
        start = time.perf_counter()
        for _ in range(iters):
            model(images, text, top_k=top_k)
        sync(device)
    seconds = (time.perf_counter() - start) / iters
    row = {"preset": name, "batch": batch, "classes": num_classes, "input": size,
           "ms_per_image": 1000 * seconds / batch, "images_per_s": batch / seconds,
           "peak_mem_mib": peak_memory_mb(device), "device": device_name(device)}
    peak = peak_tflops(device)
    if name == "paper" and peak is not None and top_k is None:
        achieved = paper_gflop(num_classes) * row["images_per_s"] / 1000  # TFLOP/s
        row.update(achieved_tflops=achieved, peak_fraction=achieved / peak)
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,mobile,paper")
    parser.add_argument("--batch-sizes", default="1,2")
    parser.add_argument("--num-classes", type=int, default=171, help="N (COCO-Stuff: 171)")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--top-k", type=int, default=None, help="category early rejection K")
    parser.add_argument("--device", default=None,
                        help="cuda, cpu, cuda:1 (default: CUDA if present)")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()
    runtime = pick_runtime(args.device)
    rows = []
    print(f"{'preset':8} {'batch':>5} {'N':>4} {'ms/img':>9} {'img/s':>8} {'peak MiB':>9} "
          f"{'TFLOP/s':>8} {'of peak':>8}")
    for name in args.presets.split(","):
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            r = bench_one(name, batch, args.num_classes, args.iters, args.warmup, runtime,
                          args.top_k)
            rows.append(r)
            tf = (f"{r['achieved_tflops']:8.1f} {100 * r['peak_fraction']:7.1f}%"
                  if "peak_fraction" in r else f"{'-':>8} {'-':>8}")
            print(f"{name:8} {batch:5d} {r['classes']:4d} {r['ms_per_image']:9.1f} "
                  f"{r['images_per_s']:8.2f} "
                  f"{r['peak_mem_mib']:9.0f} {tf}", flush=True)
    print(f"device: {rows[0]['device'] if rows else runtime.device}; torch {torch.__version__}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    device = str(rows[0]["device"]) if rows else str(runtime.device)
    record(f"model_{runtime.device.type}", [
        figure(f"{r['preset']} batch {r['batch']}: images/s", round(r["images_per_s"], 2),
               "img/s") for r in rows] + [
        figure(f"{r['preset']} batch {r['batch']}: share of the GPU's peak FLOP/s",
               round(100 * r["peak_fraction"], 1), "%") for r in rows if "peak_fraction" in r],
        title=f"STSeg forward speed per preset ({device}, {args.num_classes} classes)")


if __name__ == "__main__":
    main()
