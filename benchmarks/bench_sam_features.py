"""What the tiny preset's frozen MobileSAM costs in training, and whether SAM should encode each
augmented crop or encode each source image once and warp its features to the crop.

On built-in-world images (`render_scene`, 128 px) augmented as stage one augments them, with the
tiny preset's real MobileSAM (`mobile_sam.pt`) at `--sam-size`, it times one training step
(batch 4, forward + backward + AdamW) side by side, alternating, `--repeats` times, in CPU
seconds of this process on one thread (time.process_time: less sensitive to other work on the
machine than wall time), for:
  dea_off      DEA off (no SAM)
  dea_cached   DEA on, SAM features of each source image cached and warped to the crop
  dea_per_crop DEA on, SAM encodes every augmented crop
at each `--input-sizes` (the CLIP input side). It prints median seconds per step, the ratios to
dea_off, and the cosine similarity (mean and 5th percentile over cells) between warped and
per-crop SAM features, and records them (`results/sam_features.json`, docs/results.md).

    uv run python benchmarks/bench_sam_features.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ovseg_core.config import preset
from ovseg_core.data.synth import render_scene, world_classes
from ovseg_core.data.transforms import AugmentConfig, augment_with_geometry
from ovseg_core.loss import seen_unseen_weights, stseg_loss
from ovseg_core.modeling.build import build_model
from ovseg_core.sam_features import SamFeatureCache, crop_features
from storage.results import figure, record


class _Samples:
    def __init__(self, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.items = [render_scene(rng, 128, True) for _ in range(n)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def _batch(samples, crop: int, k: int):
    cfg = AugmentConfig(crop, (0.75, 1.5), True, 0.2)
    items = [augment_with_geometry(*samples[(k + j) % len(samples)],
                                   np.random.default_rng([0, k + j]), cfg) for j in range(4)]
    images = torch.from_numpy(np.stack([i[0] for i in items]))
    labels = torch.from_numpy(np.stack([i[1] for i in items]))
    geometry = torch.from_numpy(np.stack([i[2] for i in items]))
    indices = torch.tensor([(k + j) % len(samples) for j in range(4)])
    return images, labels, indices, geometry


def _step(model, optimizer, images, labels, text, weights, sam_features) -> None:
    """One training step as `ovseg_core.train` takes it, with the given SAM features."""
    loss = stseg_loss(model(images, text, sam_features=sam_features), labels, weights)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _similarity(model, samples, crop: int) -> dict[str, float]:
    """Cosine similarity of warped vs per-crop SAM features per cell (mean, 5th percentile), on
    SAM's grid and on the CLIP grid DEA resamples them to (mean)."""
    cache, sims, pooled = SamFeatureCache(), [], []
    clip_grid = crop // 32
    for k in range(0, 32, 4):
        images, _, indices, geometry = _batch(samples, crop, k)
        warped = crop_features(model, cache, samples, indices, geometry, crop)
        fresh = model.sam_features(images)
        sims.append(F.cosine_similarity(warped, fresh, dim=1).flatten())
        pool = lambda t: F.interpolate(t, size=(clip_grid, clip_grid), mode="bilinear",  # noqa: E731
                                       align_corners=False, antialias=True)
        pooled.append(F.cosine_similarity(pool(warped), pool(fresh), dim=1).flatten())
    sims, pooled = torch.cat(sims), torch.cat(pooled)
    return {"sam_grid_mean": round(float(sims.mean()), 3),
            "sam_grid_p05": round(float(sims.quantile(0.05)), 3),
            "clip_grid_mean": round(float(pooled.mean()), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sam-size", type=int, default=256)
    parser.add_argument("--input-sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)  # CPU seconds of one thread: no OpenMP spin-waiting counted
    torch.manual_seed(0)
    samples = _Samples(16, seed=0)
    names = world_classes()
    weights = seen_unseen_weights([i % 2 == 0 for i in range(len(names))])
    figures: dict = {"sam_size": args.sam_size, "threads": torch.get_num_threads(), "sizes": {}}
    for size in args.input_sizes:
        on = build_model(preset("tiny", input_size=size, sam={"image_size": args.sam_size}), 0)
        off = build_model(preset("tiny", input_size=size, dea_enabled=False), 0)
        text = on.encode_vocabulary(names)
        arms = {"dea_off": (off, None), "dea_cached": (on, SamFeatureCache()),
                "dea_per_crop": (on, None)}
        opts = {name: torch.optim.AdamW(m.parameters(), lr=1e-4) for name, (m, _) in arms.items()}
        times: dict[str, list[float]] = {name: [] for name in arms}
        for k in range(0, len(samples), 4):  # every source image encoded once, before timing
            _, _, indices, geometry = _batch(samples, size, k)
            crop_features(on, arms["dea_cached"][1], samples, indices, geometry, size)
        for rep in range(args.repeats + 1):  # the first round warms up
            images, labels, indices, geometry = _batch(samples, size, 4 * rep)
            for name, (model, cache) in arms.items():
                start = time.process_time()
                feats = (crop_features(model, cache, samples, indices, geometry, size)
                         if cache is not None else None)
                _step(model, opts[name], images, labels, text, weights, feats)
                if rep:
                    times[name].append(time.process_time() - start)
        med = {name: statistics.median(t) for name, t in times.items()}
        figures["sizes"][str(size)] = {
            "step_s": {k: round(v, 4) for k, v in med.items()},
            "ratio_to_dea_off": {k: round(v / med["dea_off"], 2) for k, v in med.items()},
            "clip_grid": size // 32, "sam_grid": args.sam_size // 16,
            "warped_vs_per_crop_cosine": _similarity(on, samples, size),
        }
        print(size, json.dumps(figures["sizes"][str(size)]), flush=True)
    print(f"wrote {record_figures(figures)}")


def record_figures(figures: dict, command: str | None = None) -> Path:
    """Record the measured figures as the `sam_features` results unit (`command`: the one that
    measured them; None = this process's)."""
    rows = []
    for size, f in figures["sizes"].items():
        at = f"CLIP {size} px ({f['clip_grid']}x{f['clip_grid']}), SAM {figures['sam_size']} px"
        rows += [figure(f"{at}: CPU s per step, {arm}", f["step_s"][arm], "s")
                 for arm in f["step_s"]]
        rows += [figure(f"{at}: {arm} / dea_off", f["ratio_to_dea_off"][arm], "x")
                 for arm in ("dea_cached", "dea_per_crop")]
        per_image = (f["step_s"]["dea_per_crop"] - f["step_s"]["dea_cached"]) / 4
        rows.append(figure(f"{at}: the model SAM's cost per image (per-crop - cached, / 4)",
                           round(per_image, 3), "CPU s"))
        rows += [figure(f"{at}: cosine warped vs per-crop, {k}", v, "")
                 for k, v in f["warped_vs_per_crop_cosine"].items()]
    return record("sam_features", rows, command=command,
                  title="The tiny preset's MobileSAM in training: cached-and-warped vs "
                        "per-crop SAM features (batch 4, one thread)",
                  conclusion="Training caches each source image's SAM features and warps them "
                  "to the crop (ovseg_core/sam_features.py): nearly the cost of DEA off, where "
                  "encoding every crop costs several times as much.")


if __name__ == "__main__":
    main()
