"""ESTIMATED peak GPU memory of an STSeg training step and of inference, computed without a GPU.

    OMP_NUM_THREADS=1 uv run python benchmarks/estimate_memory.py --mode train --preset paper \
        --batch 4 --crop 768 --classes 171
    OMP_NUM_THREADS=1 uv run python benchmarks/estimate_memory.py --mode infer --preset paper \
        --batch 1 --crop 768 --classes 847 --top-k 8 --kept 128
    OMP_NUM_THREADS=1 uv run python benchmarks/estimate_memory.py --mode labels --preset paper \
        --batch 1 --crop 768 --classes 847
    OMP_NUM_THREADS=1 uv run python benchmarks/estimate_memory.py --check   # the tracker check

The estimate itself, what it counts and what it does not: `ovseg_core/memory_estimate.py`.
"""

from __future__ import annotations

import argparse
import json

from ovseg_core.memory_estimate import GPU_GIB, check, estimate
from storage.results import figure, record


def _row(r: dict) -> str:
    top = f"top-K {r['top_k']} (kept {r['kept']})" if r["top_k"] else "no rejection"
    return (f"{r['mode']:6} {r['preset']:6} batch {r['batch']} crop {r['crop']} classes "
            f"{r['classes']} {top}: peak {r['peak_gib']:.2f} GiB = params "
            f"{r['parameters']:.2f} + grads {r['gradients']:.2f} + optimizer "
            f"{r['optimizer_state']:.2f} + activations/temporaries "
            f"{r['activations_temporaries']:.2f} (peak at {r['peak_at']}); under {GPU_GIB} GiB: "
            f"{r['under_80_gib']} (ESTIMATED on fake tensors, no GPU; not counted: CUDA context, "
            f"allocator fragmentation, cuDNN/cuBLAS workspaces)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("train", "infer", "labels"), default="train")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--crop", type=int, default=768, help="image side in px")
    parser.add_argument("--classes", type=int, default=171)
    parser.add_argument("--top-k", type=int, default=None, help="early rejection K (infer)")
    parser.add_argument("--kept", type=int, default=None,
                        help="classes surviving early rejection (default: all = upper bound)")
    parser.add_argument("--check", action="store_true", help="the tiny-preset tracker check")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.check:
        result = r = check()
        line = (f"tracker check, tiny preset, 2 training steps: peak fake "
                f"{r['fake_peak_mib']:.2f} MiB vs real {r['real_peak_mib']:.2f} MiB; real run's "
                f"rise over the start: tracker {r['tracker_rise_mib']:.2f} MiB vs CPU allocator "
                f"(profiler) {r['allocator_rise_mib']:.2f} MiB; loss gap {r['loss_gap']:.1e}")
    else:
        result = estimate(args.mode, args.preset, args.batch, args.crop, args.classes,
                          args.top_k, args.kept)
        line = _row(result)
    print(json.dumps(result) if args.json else line)
    _record(args, result)


def _record(args, r: dict) -> None:
    """results/memory_<case>.json: the estimate's peak and its split (GiB)."""
    if args.check:
        record("memory_tracker_check", [
            figure("fake-tensor estimate", round(r["fake_peak_mib"], 2), "MiB"),
            figure("real run", round(r["real_peak_mib"], 2), "MiB"),
            figure("real run's rise, tracker", round(r["tracker_rise_mib"], 2), "MiB"),
            figure("real run's rise, CPU allocator (profiler)", round(r["allocator_rise_mib"], 2),
                   "MiB"),
            figure("loss gap", f"{r['loss_gap']:.1e}")],
            title="Memory tracker check (tiny preset, 2 training steps, CPU)")
        return
    top = f"_top{r['top_k']}_kept{r['kept']}" if r["top_k"] else ""
    unit = f"memory_{r['mode']}_{r['preset']}_b{r['batch']}_crop{r['crop']}_c{r['classes']}{top}"
    parts = ("parameters", "gradients", "optimizer_state", "activations_temporaries")
    record(unit, [figure("ESTIMATED peak", round(r["peak_gib"], 2), "GiB", f"< {GPU_GIB}"),
                  *[figure(p.replace("_", " "), round(r[p], 2), "GiB") for p in parts],
                  figure("peak at", r["peak_at"])],
           title=f"ESTIMATED GPU memory: {r['mode']}, {r['preset']} preset, batch {r['batch']}, "
                 f"crop {r['crop']}, {r['classes']} classes"
                 + (f", top-K {r['top_k']} with {r['kept']} kept" if r["top_k"] else ""))


if __name__ == "__main__":
    main()
