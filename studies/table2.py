"""The paper's Table 2 on the built-in world: baseline, +DEA, +ST, DEA+ST over several seeds.

One pretrained tiny CLIP (made once, as `ovseg run` does) is the CLIP of every run. For each
seed and each DEA setting, one run trains stage one (the baseline / +DEA rows: its target
mIoU) and then the self-training rounds (the +ST / DEA+ST rows: the last round's target mIoU),
through the real Prefect flows. Prints mean +- std over seeds of seen, unseen and all mIoU (%)
and writes every run's figures to `<workdir>/table2.json`.

    uv run python studies/table2.py --seeds 0 1 2 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

LABELS = {"sed_b": "baseline", "dea": "+DEA", "st": "+ST", "stseg": "DEA+ST"}


def table_rows() -> list[tuple[str, bool, int | None]]:
    """(row, DEA on, round whose metrics the row reports: 0 = stage one, None = the last), from
    the paper's rows as `ovseg_core.config.ABLATIONS` defines them."""
    from ovseg_core.config import ABLATIONS

    return [(LABELS[name], row["dea_enabled"], None if row["self_training"] else 0)
            for name, row in ABLATIONS.items()]


KEYS = (("seen", "target_seen_miou"), ("unseen", "target_unseen_miou"), ("all", "target_miou"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workdir", default=None, help="default: a temporary folder")
    parser.add_argument("--target", type=int, default=None,
                        help="target images the rounds self-train on (data.synthetic.target); "
                        "default: the world's 16. The other splits do not change with it")
    parser.add_argument("--dea", choices=("both", "on", "off"), default="both",
                        help="which DEA settings to run (one setting gives only its rows)")
    args = parser.parse_args()
    from flows.prefect_env import configure_prefect

    configure_prefect()
    root = Path(args.workdir or tempfile.mkdtemp(prefix="ovseg-table2-"))
    clip = pretrained_clip(root)
    runs = {}
    settings = {"both": (False, True), "on": (True,), "off": (False,)}[args.dea]
    for seed in args.seeds:
        for dea in settings:
            runs[(seed, dea)] = run(root, clip, seed, dea, args.rounds, args.target)
            print(f"seed {seed} DEA {dea}: " + json.dumps(runs[(seed, dea)]), flush=True)
    table = {row: [metrics(runs[(s, dea)], rnd) for s in args.seeds]
             for row, dea, rnd in table_rows() if dea in settings}
    (root / "table2.json").write_text(json.dumps(table, indent=2) + "\n")
    print_table(table, args)
    record_table(table, args)


def pretrained_clip(root: Path) -> str:
    """The tiny CLIP pretrained on the world's captions (the same file `ovseg run` makes)."""
    from flows.clip_weights import clip_weights, ensure_clip
    from flows.config import RunConfig

    cfg = RunConfig.model_validate({"workspace": str(root / "clip-ws")})
    ensure_clip(cfg)
    return clip_weights(cfg)


def run(root: Path, clip: str, seed: int, dea: bool, rounds: int,
        target: int | None = None) -> dict[int, dict]:
    """{round: lineage metrics} of one run (round 0 = stage one); `target` self-trained
    images (None = the world's default)."""
    from flows.config import RunConfig
    from flows.pipeline import self_training
    from storage.workspace import Workspace

    workspace = root / f"seed{seed}-dea{int(dea)}"
    synthetic = {} if target is None else {"synthetic": {"target": target}}
    cfg = RunConfig.model_validate({
        "workspace": str(workspace), "seed": seed, "data": synthetic,
        "model": {"preset": "tiny", "dea": dea, "clip_weights": clip},
        "self_training": {"rounds": rounds, "report_images": 0},
    })
    self_training(cfg)
    return {r.round: r.metrics for r in Workspace(str(workspace)).lineage()
            if r.status == "completed"}


def metrics(run_metrics: dict[int, dict], round: int | None) -> dict:
    chosen = run_metrics[max(run_metrics) if round is None else round]
    return {name: chosen[key] for name, key in KEYS}


def mean_std(values: list[dict], name: str) -> str:
    """"mean +- std" of one column over the seeds."""
    xs = [v[name] for v in values]
    std = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.1f} +- {std:.1f}"


def record_table(table: dict, args) -> None:
    """results/table2.json (or table2_target<N>.json): each row's seen / unseen / all."""
    from storage.results import figure, record

    unit = "table2" if args.target is None else f"table2_target{args.target}"
    record(unit, [figure(f"{row}: seen / unseen / all mIoU, mean +- std over seeds "
                         f"{' '.join(map(str, args.seeds))}",
                         " / ".join(mean_std(values, name) for name, _ in KEYS), "%")
                  for row, values in table.items()],
           title=f"The paper's Table 2 on the built-in world ({args.rounds} rounds, "
                 f"{args.target or 16} self-trained images)", kind="study")


def print_table(table: dict, args) -> None:
    print(f"\nTable 2 on the built-in world: seeds {args.seeds}, {args.rounds} rounds, "
          f"{args.target or 'default'} self-trained target images, target mIoU % on the "
          "held-out images (mean +- std over seeds)")
    print(f"{'row':10s} " + " ".join(f"{name:>14s}" for name, _ in KEYS))
    for row, values in table.items():
        cells = [mean_std(values, name) for name, _ in KEYS]
        print(f"{row:10s} " + " ".join(f"{c:>14s}" for c in cells))


if __name__ == "__main__":
    main()
