"""Does DEA help? Stage one with DEA on vs off on the built-in world, over several seeds.

Each (seed, DEA setting) trains stage one through the real Prefect flow (`ovseg run` with
`self_training.rounds: 0`, the tiny preset: real frozen MobileSAM at 256 px inside the model when
DEA is on) and measures seen, unseen and all mIoU (%) on the world's held-out target images.
One pretrained tiny CLIP (made once, as `ovseg run` makes it) is the CLIP of every run.
Each run writes `<out>/runs/seed<S>-dea<0|1>.json`, so an interrupted study resumes where it
stopped; the summary (per setting: mean, std and a 95% bootstrap interval over seeds; the paired
difference on - off with its interval and how many seeds it is positive on) is written to
`<out>/dea_stage_one.json` and printed.

    uv run python studies/dea_stage_one.py --seeds 100 101 102 103 104 --out results/dea_stage_one
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

KEYS = {"seen": "target_seen_miou", "unseen": "target_unseen_miou", "all": "target_miou"}


def run_one(workdir: Path, clip: str, seed: int, dea: bool) -> dict:
    """Stage one of one seed; returns {seen, unseen, all, wall_s}."""
    from flows.config import RunConfig
    from flows.pipeline import self_training
    from storage.workspace import Workspace

    workspace = workdir / f"seed{seed}-dea{int(dea)}"
    cfg = RunConfig.model_validate({
        "workspace": str(workspace), "seed": seed,
        "model": {"preset": "tiny", "dea": dea, "clip_weights": clip},
        "self_training": {"rounds": 0, "report_images": 0},
    })
    start = time.perf_counter()
    self_training(cfg)
    wall = time.perf_counter() - start
    stage_one = next(r for r in Workspace(str(workspace)).lineage()
                     if r.round == 0 and r.status == "completed")
    return {name: stage_one.metrics[key] for name, key in KEYS.items()} | {"wall_s": wall}


def bootstrap_interval(values: np.ndarray, draws: int = 10_000, seed: int = 0
                       ) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of `values` (1-D)."""
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(draws, len(values)), replace=True).mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def summarise(runs: dict[tuple[int, bool], dict], seeds: list[int]) -> dict:
    """Per setting and metric: mean, std, interval; the paired difference on - off."""
    out: dict = {"seeds": seeds, "settings": {}, "on_minus_off": {}}
    for dea in (True, False):
        label = "dea_on" if dea else "dea_off"
        out["settings"][label] = {}
        for name in KEYS:
            xs = np.array([runs[(s, dea)][name] for s in seeds])
            out["settings"][label][name] = {
                "mean": round(float(xs.mean()), 2), "std": round(float(xs.std(ddof=1)), 2),
                "ci95": [round(v, 2) for v in bootstrap_interval(xs)]}
    for name in KEYS:
        diff = np.array([runs[(s, True)][name] - runs[(s, False)][name] for s in seeds])
        out["on_minus_off"][name] = {
            "mean": round(float(diff.mean()), 2),
            "ci95": [round(v, 2) for v in bootstrap_interval(diff)],
            "positive_seeds": int((diff > 0).sum())}
    walls = {dea: np.mean([runs[(s, dea)]["wall_s"] for s in seeds]) for dea in (True, False)}
    out["stage_one_wall_s"] = {"dea_on": round(float(walls[True]), 1),
                               "dea_off": round(float(walls[False]), 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102, 103, 104])
    parser.add_argument("--out", default="results/dea_stage_one")
    parser.add_argument("--workdir", default="ovseg-studies/dea_stage_one",
                        help="workspaces of the runs (generated data; not committed)")
    args = parser.parse_args()
    from flows.prefect_env import configure_prefect

    configure_prefect()
    out, workdir = Path(args.out), Path(args.workdir)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    clip = pretrained_clip(workdir)
    runs = {}
    for seed in args.seeds:
        for dea in (True, False):
            path = out / "runs" / f"seed{seed}-dea{int(dea)}.json"
            if not path.exists():
                result = run_one(workdir, clip, seed, dea)
                path.write_text(json.dumps(result, indent=2) + "\n")
            runs[(seed, dea)] = json.loads(path.read_text())
            print(f"seed {seed} DEA {'on' if dea else 'off'}: {runs[(seed, dea)]}", flush=True)
    summary = summarise(runs, args.seeds) | {
        "command": "uv run python studies/dea_stage_one.py --seeds "
                   + " ".join(map(str, args.seeds)) + f" --out {args.out}",
        "date": time.strftime("%Y-%m-%d"), "machine": machine(), "code_version": code_version(),
        "study_wall_s": round(time.perf_counter() - started, 1)}
    (out / "dea_stage_one.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


def pretrained_clip(root: Path) -> str:
    """The tiny CLIP pretrained on the world's captions (the same file `ovseg run` makes)."""
    from flows.clip_weights import clip_weights, ensure_clip
    from flows.config import RunConfig

    cfg = RunConfig.model_validate({"workspace": str(root / "clip-ws")})
    ensure_clip(cfg)
    return clip_weights(cfg)


def machine() -> str:
    import os

    return f"{platform.machine()} {os.cpu_count()} cores, {platform.system()}"


def code_version() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    main()
