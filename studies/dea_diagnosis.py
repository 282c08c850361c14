"""What does DEA do in stage one, and why? Variants of stage one on tuning seeds, paired.

Candidate causes of a DEA loss (docs/method-notes.md, "The tiny preset against the paper's"):
training feeds DEA SAM features warped from one encoding per source image while evaluation
feeds the image's own (`train.sam_crops`), the 4 x 4 CLIP grid, and DEA's blocks fitting the
source. This study trains stage one with the protocol's settings (`studies/selftrain_protocol.py`
`run_config`: the built-in world, the tiny preset, 256 held-out target images, one pretrained
CLIP file) in these variants:

- `off`: DEA off;
- `warped`: DEA on, SAM features warped to each training crop (the default);
- `encoded`: DEA on, SAM encoding every training crop, as evaluation does;
- `random`: DEA on with the `tiny` SAM (a random 2-block ViT) in place of MobileSAM: whether
  DEA's effect comes from SAM's trained features or from DEA's own blocks;
- `off256`, `warped256`, `random256`: `off`, `warped` and `random` with CLIP's input at 256 px
  (`model.input_size`: an 8 x 8 CLIP grid instead of the tiny preset's 4 x 4; the 128 px world
  images are upsampled): whether SAM's features count once CLIP's grid is finer.

Each (variant, seed) runs in its own workspace and writes `<runs>/<variant>-seed<S>.json`, so a
stopped study resumes; two invocations with different `--variants` or `--seeds` can share
`--runs` (give each its own PREFECT_HOME). Prints, per variant, seen / unseen / all mIoU (%) on
the held-out target with a 95% bootstrap interval, and the paired differences encoded - warped
(does the train/test difference of DEA's input cost anything?), warped - off, encoded - off,
warped - random (do SAM's trained features matter?), random - off, the same three at 256 px
and warped256 - warped (does the finer grid help?), with Wilcoxon p and the seeds each is
positive on (`studies/protocol_stats.py`). Seeds must be below 100 (tuning
seeds: a diagnosis chooses what to change).

    uv run python studies/dea_diagnosis.py --clip F --seeds 0 1 2
    uv run python studies/dea_diagnosis.py --clip F --seeds 3 4 --variants off256 warped256 random256
    uv run python studies/dea_diagnosis.py --summary-only --seeds 0 1 2 3 4 --record
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {"off": (False, "warped", None, None), "warped": (True, "warped", None, None),
            "encoded": (True, "encoded", None, None), "random": (True, "warped", "tiny", None),
            "off256": (False, "warped", None, 256), "warped256": (True, "warped", None, 256),
            "random256": (True, "warped", "tiny", 256)}
"""Variant -> (DEA on, train.sam_crops, model.sam_variant, model.input_size; None = the
preset's)."""
PAIRS = (("encoded", "warped"), ("warped", "off"), ("encoded", "off"), ("warped", "random"),
         ("random", "off"), ("warped256", "off256"), ("warped256", "random256"),
         ("random256", "off256"), ("warped256", "warped"))
METRICS = {"seen": "target_seen_miou", "unseen": "target_unseen_miou", "all": "target_miou"}
TARGET_VAL = 256


def run_one(workdir: Path, clip: str, variant: str, seed: int) -> dict:
    """Stage one of (variant, seed); returns its held-out mIoU (%) and wall time (s)."""
    from flows.config import RunConfig
    from flows.pipeline import self_training
    from storage.terms import COMPLETED, STAGE_ONE
    from storage.workspace import Workspace
    from studies.selftrain_protocol import run_config

    dea, sam_crops, sam_variant, input_size = VARIANTS[variant]
    path = workdir / f"seed{seed}-{variant}"
    base = run_config("stageone", seed, path, clip,
                      {"rounds": 0, "steps": None, "target_val": TARGET_VAL})
    data = base.model_dump(mode="json")
    data["model"]["dea"] = dea
    data["train"]["sam_crops"] = sam_crops
    if sam_variant:
        data["model"]["sam_variant"] = sam_variant
    if input_size:
        data["model"]["input_size"] = input_size
    start = time.perf_counter()
    self_training(RunConfig.model_validate(data))
    wall = time.perf_counter() - start
    record = next(r for r in Workspace(str(path)).lineage()
                  if r.stage == STAGE_ONE and r.status == COMPLETED)
    return ({name: record.metrics[key] for name, key in METRICS.items()}
            | {"variant": variant, "seed": seed, "wall_s": round(wall, 1),
               "checkpoint_sha256": record.checkpoint_sha256})


def summary_lines(runs: dict[str, dict[int, dict]]) -> tuple[list[str], list[dict]]:
    """The printed table and the results figures: per variant and metric, the mean with its
    interval; per pair and metric, the paired difference."""
    from storage.results import figure
    from studies.protocol_stats import compare, describe
    from studies.selftrain_protocol import paired_figure

    lines, figures = [], []
    for variant, by_seed in runs.items():
        for metric in METRICS:
            d = describe({s: r[metric] for s, r in by_seed.items()})
            if d["n"] == 0:
                continue
            low, high = d["ci95"]
            lines.append(f"{variant:9s} {metric:7s} n {d['n']}  {d['mean']:6.2f} "
                         f"[{low:.2f}, {high:.2f}]")
            figures.append(figure(f"{variant}: {metric} mIoU, mean over {d['n']} seeds (95% CI "
                                  f"{low:.2f}-{high:.2f})", round(d["mean"], 2), "%"))
    for arm, base in PAIRS:
        for metric in METRICS:
            vs = compare({s: r[metric] for s, r in runs.get(arm, {}).items()},
                         {s: r[metric] for s, r in runs.get(base, {}).items()})
            if vs["n"] == 0:
                continue
            pair = paired_figure(arm, base, metric, vs)
            lines.append(f"{pair['name']}: {pair['value']:+.2f}")
            figures.append(pair)
    for variant, by_seed in runs.items():
        if by_seed:
            mean_wall = sum(r["wall_s"] for r in by_seed.values()) / len(by_seed)
            figures.append(figure(f"{variant}: stage one wall time, mean over {len(by_seed)} "
                                  "seeds (one thread)", round(mean_wall, 1), "s"))
    return lines, figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip",
                        help="a pretrained tiny CLIP file (`uv run ovseg clip pretrain --out F`)")
    parser.add_argument("--summary-only", action="store_true",
                        help="summarise the (variant, seed) JSONs already in --runs; train nothing")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--runs", type=Path, default=REPO / "results" / "dea_diagnosis" / "runs")
    parser.add_argument("--workdir", type=Path, default=REPO / "ovseg-studies" / "dea_diagnosis")
    parser.add_argument("--record", action="store_true",
                        help="record the summary as the dea_diagnosis results unit")
    args = parser.parse_args(argv)
    if any(s >= 100 for s in args.seeds):
        parser.error("seeds 100 and above are the protocol's test seeds; diagnose on seeds < 100")
    if not (args.clip or args.summary_only):
        parser.error("--clip is required unless --summary-only")
    import torch

    from flows.prefect_env import configure_prefect

    torch.set_num_threads(1)
    configure_prefect()
    args.runs.mkdir(parents=True, exist_ok=True)
    runs: dict[str, dict[int, dict]] = {v: {} for v in args.variants}
    for seed in args.seeds:
        for variant in args.variants:
            path = args.runs / f"{variant}-seed{seed}.json"
            if args.summary_only and not path.exists():
                continue
            if not path.exists():
                result = run_one(args.workdir, args.clip, variant, seed)
                path.write_text(json.dumps(result, indent=2) + "\n")
                print(f"seed {seed} {variant}: {result}", flush=True)
            runs[variant][seed] = json.loads(path.read_text())
    lines, figures = summary_lines(runs)
    print("\n".join(lines))
    if args.record:
        from storage.results import record

        seeds = " ".join(map(str, args.seeds))
        how = ("--summary-only" if args.summary_only else "--clip F") + f" --seeds {seeds}"
        if args.variants != list(VARIANTS):
            how += " --variants " + " ".join(args.variants)
        print(record("dea_diagnosis", figures, kind="study",
                     command=f"uv run python studies/dea_diagnosis.py {how} --record  # runs: "
                             "--clip F --seeds S [--variants V ...], F from `uv run ovseg clip "
                             "pretrain --out F`; one JSON per (variant, seed) in --runs",
                     title="What DEA does in stage one: DEA off, on with warped SAM features, on "
                           "with SAM encoding every crop, on with a random SAM, at CLIP's 128 "
                           "and 256 px input (tuning seeds, held-out target mIoU)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
