"""Data loading speed beside the model's training step time: will the loaders starve the GPU?

Prints loader throughput (augmented training samples per second, through the same DataLoader
the training loop uses) for several worker counts, and the model's training step time
(forward + backward + AdamW) for one batch, as images per second.

    .venv/bin/python benchmarks/bench_data.py                       # tiny preset, synthetic data
    .venv/bin/python benchmarks/bench_data.py --preset paper --dataset ade150 --root DATA/ \
        --split validation --crop 768 --workers 0 4 8 --device cuda
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def loader_images_per_s(samples, crop: int, batch: int, workers: int, batches: int) -> float:
    from ovseg_core.train import TrainConfig, _loader

    cfg = TrainConfig(steps=batches + 2, batch_size=batch, crop_size=crop, num_workers=workers)
    it = iter(_loader(samples, cfg, start_step=0))
    next(it)  # worker start-up excluded
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - start)


def step_seconds(preset_name: str, crop: int, batch: int, num_classes: int, device: str,
                 repeats: int) -> float:
    from ovseg_core.config import preset
    from ovseg_core.device import pick_runtime
    from ovseg_core.loss import seen_unseen_weights, stseg_loss
    from ovseg_core.modeling.build import build_model

    runtime = pick_runtime(device)
    model = build_model(preset(preset_name)).to(runtime.device).train()
    text = model.encode_vocabulary([f"class {i}" for i in range(num_classes)])
    optimizer = torch.optim.AdamW(model.trainable_parameter_groups(2e-4), weight_decay=1e-4)
    weights = seen_unseen_weights([True] * num_classes).to(runtime.device)
    images = torch.rand(batch, 3, crop, crop, device=runtime.device)
    labels = torch.randint(0, num_classes, (batch, crop, crop), device=runtime.device)
    times = []
    for _ in range(repeats + 1):
        if runtime.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with runtime.autocast():
            output = model(images, text)
        loss = stseg_loss(output, labels, weights)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if runtime.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[len(times[1:]) // 2]  # median, first (warm-up) step excluded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--dataset", default=None, help="dataset kind (default: the synthetic one)")
    parser.add_argument("--root")
    parser.add_argument("--split", default="train")
    parser.add_argument("--crop", type=int, default=None, help="default: the preset's input size")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default=None)
    parser.add_argument("--skip-model", action="store_true", help="measure the loader only")
    args = parser.parse_args()

    from ovseg_core.config import preset
    from ovseg_core.data import open_dataset, write_synthetic_dataset

    crop = args.crop or preset(args.preset).input_size
    with tempfile.TemporaryDirectory() as tmp:
        if args.dataset is None:
            root = write_synthetic_dataset(Path(tmp) / "synth", seed=0) / "source"
            samples = open_dataset("generic", root, "train")
        else:
            samples = open_dataset(args.dataset, args.root, args.split)
        print(f"torch threads {torch.get_num_threads()}; {len(samples)} samples; crop {crop}; "
              f"batch {args.batch}")
        rates = {}
        for workers in args.workers:
            rates[workers] = loader_images_per_s(samples, crop, args.batch, workers, args.batches)
            print(f"loader  workers={workers}: {rates[workers]:8.1f} images/s")
        if args.skip_model:
            return
        seconds = step_seconds(args.preset, crop, args.batch, len(samples.class_names),
                               args.device, args.repeats)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    print(f"model   {args.preset} train step on {name}: {1000 * seconds:8.1f} ms/step = "
          f"{args.batch / seconds:8.1f} images/s")
    from storage.results import figure, record

    record(f"data_{args.preset}_{args.dataset or 'synthetic'}", [
        figure("training step", round(args.batch / seconds, 1), "images/s"),
        *[figure(f"loader, {w} workers", round(r, 1), "images/s", "> the training step")
          for w, r in rates.items()]],
        title=f"Data loading beside the {args.preset} training step ({name}, crop {crop})")


if __name__ == "__main__":
    main()
