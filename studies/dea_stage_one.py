"""Does DEA help? Stage one with DEA on vs off on the built-in world, over several seeds.

Each (seed, DEA setting) trains stage one through the real Prefect flow (`ovseg run` with
`self_training.rounds: 0`, the tiny preset: real frozen MobileSAM at 256 px inside the model when
DEA is on) and measures seen, unseen and all mIoU (%) on the world's held-out target images.
One pretrained tiny CLIP (made once, as `ovseg run` makes it) is the CLIP of every run.
Each run writes `<runs>/seed<S>-dea<0|1>.json`, so an interrupted study resumes where it
stopped; the summary (per setting: mean, std and a 95% bootstrap interval over seeds; the paired
difference on - off with its interval and how many seeds it is positive on) is printed and
recorded as the `dea_stage_one` results unit (docs/results.md).

    uv run python studies/dea_stage_one.py --seeds 100 101 102 103 104
"""

from __future__ import annotations

import argparse
import json
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
    parser.add_argument("--runs", default="results/dea_stage_one/runs",
                        help="one JSON per finished run (the study resumes from them)")
    parser.add_argument("--workdir", default="ovseg-studies/dea_stage_one",
                        help="workspaces of the runs (generated data; not committed)")
    args = parser.parse_args()
    from flows.prefect_env import configure_prefect

    configure_prefect()
    runs_dir, workdir = Path(args.runs), Path(args.workdir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    clip = pretrained_clip(workdir)
    runs = {}
    for seed in args.seeds:
        for dea in (True, False):
            path = runs_dir / f"seed{seed}-dea{int(dea)}.json"
            if not path.exists():
                result = run_one(workdir, clip, seed, dea)
                path.write_text(json.dumps(result, indent=2) + "\n")
            runs[(seed, dea)] = json.loads(path.read_text())
            print(f"seed {seed} DEA {'on' if dea else 'off'}: {runs[(seed, dea)]}", flush=True)
    summary = summarise(runs, args.seeds)
    print(json.dumps(summary, indent=2))
    print(record_summary(summary, time.perf_counter() - started))


def record_summary(summary: dict, wall_s: float):
    """The summary as the `dea_stage_one` results unit (mIoU in %)."""
    from storage.results import figure, record

    rows = []
    for label, metrics in summary["settings"].items():
        for name, m in metrics.items():
            low, high = m["ci95"]
            rows.append(figure(f"{label}: {name} mIoU, mean (95% CI {low}-{high}; std "
                               f"{m['std']})", m["mean"], "%"))
    for name, d in summary["on_minus_off"].items():
        low, high = d["ci95"]
        rows.append(figure(f"on - off: {name} mIoU, paired mean (95% CI {low} to {high}; "
                           f"positive on {d['positive_seeds']} of {len(summary['seeds'])} "
                           "seeds)", d["mean"], "points"))
    rows += [figure(f"stage one wall time, {k}", v, "s")
             for k, v in summary["stage_one_wall_s"].items()]
    rows.append(figure("study wall time", round(wall_s, 1), "s"))
    seeds = " ".join(map(str, summary["seeds"]))
    return record("dea_stage_one", rows, kind="study",
                  command=f"uv run python studies/dea_stage_one.py --seeds {seeds}",
                  title="DEA on vs off: stage one on the built-in world (tiny preset, real "
                        "MobileSAM at 256 px), held-out target mIoU over seeds")


def pretrained_clip(root: Path) -> str:
    """The tiny CLIP pretrained on the world's captions (the same file `ovseg run` makes)."""
    from flows.clip_weights import clip_weights, ensure_clip
    from flows.config import RunConfig

    cfg = RunConfig.model_validate({"workspace": str(root / "clip-ws")})
    ensure_clip(cfg)
    return clip_weights(cfg)


if __name__ == "__main__":
    main()
