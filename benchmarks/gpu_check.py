"""The GPU check: speed and memory of the real architectures on one CUDA GPU, in one JSON file.

    benchmarks/gpu.sh                      # on a CUDA machine: about 5 min, < 8 min
    benchmarks/gpu.sh --dry-run            # anywhere, on the CPU at tiny sizes: seconds

Measures (each figure beside its inputs in the JSON):
- forward: the paper and mobile presets' forward pass in bf16 autocast (images/s at batch 4,
  171 classes), FLOPs per image counted by `torch.utils.flop_counter.FlopCounterMode`, and the
  fraction of the GPU's dense bf16 peak that this reaches (peak by GPU name, `PEAK_BF16_TFLOPS`);
- sam_decode: the real MobileSAM prompt encoder + mask decoder refining 32 regions of one image
  in one batched pass vs one region per pass (`SamRefiner.refine_batch`, `max_prompts`);
- memory: the real peak of a paper-preset training step (batch 4, crop 768, 171 classes, AdamW,
  the second step) and of inference at 847 classes (label maps, as `predict` / `evaluate`; and
  probabilities, as a round), each beside `benchmarks/estimate_memory.py`'s estimate;
- labelling_round: one round's labelling (`RoundLabeler.label`: model pass, MobileSAM image
  encoder, gating, batched refinement) of 64 images of 480 x 640 with the mobile preset.

Weights: no CLIP weights can be fetched offline, so CLIP, the decoder and (paper preset) SAM
ViT-B are random initialisations of the real architectures (speed and memory do not depend on
the values); the refiner's MobileSAM has its real weights (`default_sam_checkpoint("vit_t")`).
With random weights, the labelling round gates every region (gate 0.0) so that SAM refines.

--dry-run: the same code on the CPU at tiny sizes (tiny preset, tiny SAM, 2 images), fp32, and
the "real" memory peaks from estimate_memory's tracker on real CPU tensors instead of CUDA's
allocator. It checks that the script runs; its figures say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from ovseg_core.config import preset
from ovseg_core.device import Runtime, pick_runtime
from ovseg_core.inference import predict_labels, predict_probabilities
from ovseg_core.labeling import EmbeddingCache, RoundLabeler
from ovseg_core.modeling.build import build_skeleton
from ovseg_core.modeling.sam_encoder import build_sam, default_sam_checkpoint
from ovseg_core.selftrain import SamRefiner
from ovseg_core.selftrain.refiner import RefinerSettings
from ovseg_core.selftrain.regions import Region, mask_bbox
from ovseg_core.templates import IMAGENET_TEMPLATES

GIB = 2**30
DEFAULT_OUT = Path("results/gpu_check.json")
ESTIMATOR = Path(__file__).with_name("estimate_memory.py")
PEAK_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H100", 989.0), ("H200", 989.0), ("GH200", 989.0),
                    ("A100", 312.0), ("L40S", 362.0), ("A6000", 155.0))
"""Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) by substring of the GPU's name, first
match wins."""


@dataclass(frozen=True)
class Sizes:
    """What is measured: the full check on a GPU, or the dry run's tiny version."""

    presets: tuple[str, ...] = ("paper", "mobile")
    forward_batch: int = 4
    forward_classes: int = 171
    iters: int = 10
    regions: int = 32
    refiner_sam: str = "vit_t"
    train_preset: str = "paper"
    train_batch: int = 4
    train_crop: int = 768
    train_classes: int = 171
    infer_crop: int = 768
    infer_classes: int = 847
    label_preset: str = "mobile"
    label_images: int = 64
    label_batch: int = 8
    image_hw: tuple[int, int] = (480, 640)


DRY_RUN = Sizes(presets=("tiny",), forward_batch=1, forward_classes=4, iters=1, regions=4,
                refiner_sam="tiny", train_preset="tiny", train_batch=1, train_crop=32,
                train_classes=4, infer_crop=32, infer_classes=8, label_preset="tiny",
                label_images=2, label_batch=2, image_hw=(48, 64))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, iters: int, warmup: int = 2) -> float:
    """Mean seconds of `fn()` over `iters` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(device)
    return (time.perf_counter() - start) / iters


def random_text(model, classes: int, device: torch.device) -> torch.Tensor:
    """(N, P, D) unit vectors in the shape of `encode_vocabulary`'s output."""
    return F.normalize(torch.randn(classes, len(IMAGENET_TEMPLATES), model.clip_text.embed_dim,
                                   device=device), dim=-1)


def peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS if k in name), None)


# ---------------------------------------------------------------- forward speed and FLOPs
def forward(name: str, sizes: Sizes, runtime: Runtime) -> dict:
    """images/s of preset `name`'s forward pass, FLOPs per image, fraction of the GPU's peak."""
    device = runtime.device
    torch.manual_seed(0)
    model = build_skeleton(preset(name)).to(device).eval()
    size = model.config.input_size
    text = random_text(model, sizes.forward_classes, device)
    images = torch.rand(sizes.forward_batch, 3, size, size, device=device)
    with torch.no_grad(), runtime.autocast():
        counter = FlopCounterMode(display=False)
        with counter:
            model(images[:1], text)
        seconds = timed(functools.partial(model, images, text), device, sizes.iters,
                        warmup=min(2, sizes.iters))
    flops = counter.get_total_flops()
    per_s = sizes.forward_batch / seconds
    peak = peak_tflops(device)
    achieved = flops * per_s / 1e12
    del model
    _free(device)
    return {"preset": name, "batch": sizes.forward_batch, "input": size,
            "classes": sizes.forward_classes, "dtype": _dtype(runtime),
            "images_per_s": per_s, "gflop_per_image": flops / 1e9,
            "achieved_tflops": achieved, "peak_bf16_tflops": peak,
            "peak_fraction": None if peak is None else achieved / peak}


# ---------------------------------------------------------------- SAM decoding
def blobs(count: int, hw: tuple[int, int], seed: int = 0) -> list[Region]:
    """`count` elliptic regions at random places of an (H, W) image, confidence 0.95."""
    h, w = hw
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    out = []
    for i in range(count):
        cy, cx = rng.uniform(0.1 * h, 0.9 * h), rng.uniform(0.1 * w, 0.9 * w)
        ry, rx = rng.uniform(0.03, 0.1) * h, rng.uniform(0.03, 0.1) * w
        mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        out.append(Region(i % 20, mask, 0.95, int(mask.sum()), mask_bbox(mask)))
    return out


def refiner_parts(variant: str, device: torch.device):
    """SAM parts on real weights (vit_t: MobileSAM's file; tiny: random, the dry run)."""
    parts = build_sam(variant, default_sam_checkpoint(variant))
    for module in (parts.image_encoder, parts.prompt_encoder, parts.mask_decoder):
        module.to(device).eval()
    return parts


def sam_decode(sizes: Sizes, runtime: Runtime) -> dict:
    """ms to refine `sizes.regions` regions of one image: one batched pass vs one per region."""
    device = runtime.device
    parts = refiner_parts(sizes.refiner_sam, device)
    side = parts.image_size // 16
    emb = torch.randn(1, parts.embed_dim, side, side, device=device)
    regions = [blobs(sizes.regions, sizes.image_hw)]
    times = {}
    with torch.inference_mode():
        for label, per_pass in (("batched", sizes.regions), ("one_by_one", 1)):
            refiner = SamRefiner(parts, RefinerSettings(max_prompts=per_pass))
            times[label] = timed(lambda r=refiner: r.refine_batch(emb, [sizes.image_hw], regions,
                                                                  threshold=0.0),
                                 device, iters=max(1, sizes.iters // 2), warmup=1)
    weights = default_sam_checkpoint(sizes.refiner_sam)
    return {"sam": sizes.refiner_sam, "weights": None if weights is None else str(weights),
            "regions": sizes.regions, "image_hw": list(sizes.image_hw),
            "batched_ms": 1e3 * times["batched"], "one_by_one_ms": 1e3 * times["one_by_one"],
            "speedup": times["one_by_one"] / times["batched"]}


# ---------------------------------------------------------------- memory
def load_estimator():
    """benchmarks/estimate_memory.py as a module (read from its file: benchmarks/ is not a
    package)."""
    spec = importlib.util.spec_from_file_location("estimate_memory", ESTIMATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def memory(sizes: Sizes, runtime: Runtime) -> dict:
    """Real peak memory (GiB) of a training step and of inference, beside the estimates."""
    estimator = load_estimator()
    cases = {"train_step": ("train", sizes.train_batch, sizes.train_crop, sizes.train_classes),
             "inference_labels": ("labels", 1, sizes.infer_crop, sizes.infer_classes),
             "inference_probabilities": ("infer", 1, sizes.infer_crop, sizes.infer_classes)}
    out = {}
    for key, (mode, batch, crop, classes) in cases.items():
        estimate = estimator.estimate(mode, sizes.train_preset, batch, crop, classes)
        if runtime.device.type == "cuda":
            real = cuda_peak(mode, sizes.train_preset, batch, crop, classes, runtime, estimator)
        else:  # the dry run: the estimator's tracker on real CPU tensors
            real = {"peak_gib": estimator.estimate(mode, sizes.train_preset, batch, crop,
                                                   classes, fake=False)["peak_gib"],
                    "how": "live tensor bytes on real CPU tensors (estimate_memory's tracker)"}
        out[key] = {"mode": mode, "preset": sizes.train_preset, "batch": batch, "crop": crop,
                    "classes": classes, **real, "estimate_gib": estimate["peak_gib"],
                    "real_over_estimate": real["peak_gib"] / estimate["peak_gib"]}
    return out


def cuda_peak(mode: str, name: str, batch: int, crop: int, classes: int, runtime: Runtime,
              estimator) -> dict:
    """torch.cuda.max_memory_allocated (GiB) over one inference call or two training steps
    (the second is the steady state, as estimated)."""
    from ovseg_core import train as train_module
    from ovseg_core.loss import seen_unseen_weights

    device = runtime.device
    _free(device)
    torch.manual_seed(0)
    model = build_skeleton(preset(name)).to(device)
    text = random_text(model, classes, device)
    images = torch.rand(batch, 3, crop, crop, device=device)
    torch.cuda.reset_peak_memory_stats(device)
    if mode == "train":
        labels = torch.randint(0, classes, (batch, crop, crop), device=device)
        weights = seen_unseen_weights([c % 2 == 0 for c in range(classes)]).to(device)
        cfg = train_module.preset_train_config(name, batch_size=batch, crop_size=crop)
        optimizer = torch.optim.AdamW(train_module._param_groups(model.train(), cfg), lr=cfg.lr,
                                      weight_decay=cfg.weight_decay)
        for _ in range(2):
            train_module._train_step(model, optimizer, images, labels, text, weights, runtime,
                                     cfg.grad_clip)
    else:
        predict = predict_labels if mode == "labels" else predict_probabilities
        with torch.no_grad():
            predict(model.eval(), images, text, runtime)
    sync(device)
    peak = torch.cuda.max_memory_allocated(device) / GIB
    reserved = torch.cuda.max_memory_reserved(device) / GIB
    del model, images, text
    _free(device)
    return {"peak_gib": peak, "reserved_gib": reserved, "how": "torch.cuda.max_memory_allocated"}


# ---------------------------------------------------------------- one labelling round
def labelling_round(sizes: Sizes, runtime: Runtime) -> dict:
    """Seconds to label `label_images` images of `image_hw` with the label preset's model and
    the real MobileSAM refiner (every region gated: the model is random)."""
    device = runtime.device
    torch.manual_seed(0)
    model = build_skeleton(preset(sizes.label_preset)).to(device).eval()
    refiner = SamRefiner(refiner_parts(sizes.refiner_sam, device), RefinerSettings())
    names = [f"class {k}" for k in range(sizes.forward_classes)]
    labeler = RoundLabeler(model, refiner, names, runtime, threshold=0.0, cache=EmbeddingCache())
    rng = np.random.default_rng(0)
    h, w = sizes.image_hw
    images = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(sizes.label_images)]
    for image in images:  # a few flat shapes, so regions have edges to follow
        for _ in range(4):
            y, x = rng.integers(0, h - h // 4), rng.integers(0, w - w // 4)
            image[y:y + h // 4, x:x + w // 4] = rng.integers(0, 255, 3)
    labeler.label(images[:1], ["warmup"])  # cuDNN autotuning, lazy inits
    sync(device)
    start = time.perf_counter()
    regions = gated = refined = 0
    for k in range(0, len(images), sizes.label_batch):
        batch = images[k:k + sizes.label_batch]
        for found in labeler.label(batch, [f"image-{k + i}" for i in range(len(batch))]):
            regions += len(found)
            gated += sum(r.gated for r in found)
            refined += sum(r.label_source == "sam" for r in found)
    sync(device)
    seconds = time.perf_counter() - start
    return {"preset": sizes.label_preset, "sam": sizes.refiner_sam, "images": len(images),
            "image_hw": [h, w], "batch": sizes.label_batch, "classes": len(names),
            "seconds": seconds, "images_per_s": len(images) / seconds, "regions": regions,
            "gated": gated, "refined_by_sam": refined, "gate": 0.0}


# ---------------------------------------------------------------- the whole check
def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _dtype(runtime: Runtime) -> str:
    return "bf16 autocast" if runtime.autocast_dtype == torch.bfloat16 else "fp32"


def machine(runtime: Runtime, dry_run: bool) -> dict:
    device = runtime.device
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"CPU {platform.machine()} x{torch.get_num_threads()} threads")
    return {"device": name, "torch": torch.__version__, "cuda": torch.version.cuda,
            "python": platform.python_version(), "dry_run": dry_run,
            "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "code": _git_commit(),
            "weights": "random init of the real architectures (CLIP, decoder, SAM ViT-B); "
                       + ("tiny SAM refiner, random (dry run)" if dry_run
                          else "the refiner's MobileSAM on its real weights")}


def _git_commit() -> str | None:
    """The checkout's commit (with "+dirty" when files differ), None outside git."""
    import subprocess

    root = Path(__file__).parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def run_check(dry_run: bool, device: str | None = None) -> dict:
    """Every measurement of the check, as one JSON-able dict."""
    sizes = DRY_RUN if dry_run else Sizes()
    runtime = pick_runtime("cpu" if dry_run and device is None else device)
    started = time.perf_counter()
    result = {"machine": machine(runtime, dry_run)}
    steps = (("forward", lambda: [forward(n, sizes, runtime) for n in sizes.presets]),
             ("sam_decode", lambda: sam_decode(sizes, runtime)),
             ("memory", lambda: memory(sizes, runtime)),
             ("labelling_round", lambda: labelling_round(sizes, runtime)))
    for key, step in steps:
        t0 = time.perf_counter()
        result[key] = step()
        print(f"[gpu_check] {key}: {time.perf_counter() - t0:.1f} s", file=sys.stderr,
              flush=True)
    result["seconds"] = time.perf_counter() - started
    return result


def summary(r: dict) -> list[str]:
    """Lines for people: the figures of `run_check`'s result."""
    lines = [f"device: {r['machine']['device']} (dry run: {r['machine']['dry_run']}); "
             f"weights: {r['machine']['weights']}"]
    for f in r["forward"]:
        frac = "-" if f["peak_fraction"] is None else f"{100 * f['peak_fraction']:.1f}%"
        lines.append(f"forward {f['preset']:6} {f['dtype']}: {f['images_per_s']:.1f} images/s "
                     f"(batch {f['batch']}, {f['input']} px, {f['classes']} classes), "
                     f"{f['gflop_per_image']:.0f} GFLOP/image, {f['achieved_tflops']:.1f} "
                     f"TFLOP/s = {frac} of peak")
    s = r["sam_decode"]
    lines.append(f"SAM {s['sam']} decoding {s['regions']} regions: batched {s['batched_ms']:.1f}"
                 f" ms, one by one {s['one_by_one_ms']:.1f} ms ({s['speedup']:.1f}x)")
    for key, m in r["memory"].items():
        lines.append(f"memory {key} ({m['preset']}, batch {m['batch']}, {m['crop']} px, "
                     f"{m['classes']} classes): real {m['peak_gib']:.2f} GiB, estimate "
                     f"{m['estimate_gib']:.2f} GiB")
    lab = r["labelling_round"]
    lines.append(f"labelling {lab['images']} images {lab['image_hw'][0]}x{lab['image_hw'][1]} "
                 f"({lab['preset']} + SAM {lab['sam']}): {lab['seconds']:.1f} s, "
                 f"{lab['images_per_s']:.2f} images/s, {lab['regions']} regions, "
                 f"{lab['refined_by_sam']} refined by SAM")
    lines.append(f"total {r['seconds']:.0f} s")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny sizes on the CPU (seconds): checks the script, not a GPU")
    parser.add_argument("--device", default=None, help="default: cuda (cpu for --dry-run)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    args = parser.parse_args()
    if not args.dry_run and not torch.cuda.is_available() and args.device is None:
        parser.error("no CUDA GPU here: run it on a GPU machine, or --dry-run")
    result = run_check(args.dry_run, args.device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(summary(result)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
