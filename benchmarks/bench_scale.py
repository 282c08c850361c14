"""Does a round's cost grow linearly with its images, and its memory stay flat? (issue 13)

Runs stage one once (shared, not timed: the synthetic world's small source, tiny preset), then
for each size in `--sizes` one round through the real Prefect flow (`bench_round.timed_round`,
phases of `ovseg_core.profiling` on) in a fresh child process, over that many generated target
images (`data.synthetic.target`), in a copy of the stage-one workspace. The child's own peak
RSS is therefore the round's at that size. Per size it prints:

- wall s of the round; labelling s/img (data, vocabulary, model, regions, SAM encoder, SAM
  refinement, model loading), storage s/img, retraining s (fixed steps: a per-round constant)
  and s/img, selection s (the retraining selection built inside the round), evaluation and
  report s;
- orchestration: the wall time no phase claims (Prefect tasks and flow runs, glue), % of wall;
- peak RSS MB of the child, read right after the round (ru_maxrss; the child's own
  children are not counted: a forked child inherits its parent's peak, so RUSAGE_CHILDREN
  would only repeat it);
- Parquet bytes per image: the round's committed shard files (pseudo_labels + images) / images;
- `class_stats` query s and building the retraining selection (`PseudoLabelSamples`) s, each
  timed after the round on its committed store;
- the marginal s/img between consecutive sizes, then the issue's two ratios: marginal s/img at
  the largest size / at the size before, and the same for peak RSS (targets: both <= 1.2).

Dataset generation, the Prefect server start and imports are not timed; the temporary Prefect
server runs in its own process, outside the peak RSS. Rows go to `--out` as JSON. The issue's
figures used `--gate 0 --shard-size 64` (every region refined by SAM). A `--workdir` used
before keeps its stage one (whatever the stage settings given now); with few `--stage-steps`
no region may pass the preset's gate, and the round then stops with nothing to retrain on.

    OMP_NUM_THREADS=2 uv run python benchmarks/bench_scale.py --sizes 100 1000 10000 \\
        --gate 0 --out scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_round import bench_config, timed_round

from ovseg_core.round_costs import ratios, table_row
from storage.results import figure, record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000],
                        help="target images per round, one fresh process each")
    parser.add_argument("--preset", default="tiny", choices=("tiny", "mobile", "paper"))
    parser.add_argument("--refiner", default="vit_t",
                        help="refiner SAM (the default job's: vit_t; tiny, model, ...)")
    parser.add_argument("--gate", type=float, default=None,
                        help="gate threshold; default: the preset's (0.3 for tiny)")
    parser.add_argument("--fallback", default="ignore", choices=("ignore", "coarse"),
                        help="what an untrusted SAM mask paints; the tiny refiner (random "
                        "weights) trusts none, so with it use coarse, else nothing retrains")
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument("--stage-steps", type=int, default=None,
                        help="stage-one steps; default: the preset's")
    parser.add_argument("--retrain-steps", type=int, default=50,
                        help="retraining steps, the same at every size")
    parser.add_argument("--device", default=None)
    parser.add_argument("--clip-verify", action="store_true",
                        help="run CLIP's check of the gated regions (default off here: like "
                        "the tiny refiner, so the pipeline's own costs show)")
    parser.add_argument("--workdir", default=None, help="default: a temporary folder")
    parser.add_argument("--keep", action="store_true",
                        help="keep each size's workspace (default: delete it once measured)")
    parser.add_argument("--out", default=None, help="write the rows as JSON here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child))
        return

    root = Path(args.workdir or tempfile.mkdtemp(prefix="ovseg-bench-scale-"))
    os.environ.setdefault("PREFECT_HOME", str(root / "prefect"))  # inherited by the children
    stage_ws = stage_one(root, args)
    rows = []
    for size in sorted(set(args.sizes)):
        rows.append(measure_size(root, stage_ws, size, args))
        print_table(rows)
    summary = ratios(rows)
    print_summary(summary)
    _record(rows, summary)
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows,
                                              "summary": summary}, indent=2) + "\n")
        print(f"rows written to {args.out}")


def config_for(workspace: Path, images: int, args):
    return bench_config(workspace, preset=args.preset, images=images, refiner=args.refiner,
                        shard_size=args.shard_size, gate=args.gate, fallback=args.fallback,
                        stage_steps=args.stage_steps, retrain_steps=args.retrain_steps,
                        device=args.device, clip_verify=args.clip_verify)


def progress(message: str) -> None:
    print(f"[bench_scale {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---- parent: stage one once, then one child per size
def stage_one(root: Path, args) -> Path:
    """Stage one in `root/stage/ws` (not timed); its workspace is copied for every size."""
    from flows.prefect_env import configure_prefect

    configure_prefect()
    from flows.pipeline import self_training

    ws = root / "stage" / "ws"
    progress(f"stage one in {ws} (not timed)")
    start = time.perf_counter()
    self_training(config_for(ws, 4, args), rounds=0)
    progress(f"stage one done in {time.perf_counter() - start:.0f} s")
    return ws


def measure_size(root: Path, stage_ws: Path, size: int, args) -> dict:
    """One round over `size` generated target images in a fresh process: its table row."""
    from flows.plan import ensure_synthetic

    ws = root / f"size={size}" / "ws"
    shutil.rmtree(ws.parent, ignore_errors=True)
    shutil.copytree(stage_ws, ws, ignore=shutil.ignore_patterns("datasets"))
    cfg = config_for(ws, size, args)
    progress(f"{size} images: generating the target (not timed)")
    ensure_synthetic(cfg)
    job = ws.parent / "job.json"
    job.write_text(json.dumps({"config": cfg.model_dump(mode="json"), "size": size}))
    progress(f"{size} images: round 1 in a fresh process")
    start = time.perf_counter()
    code = subprocess.run([sys.executable, __file__, "--child", str(job)]).returncode
    if code:
        raise SystemExit(f"{size} images: the round's process failed (exit {code}, its output "
                         f"above); its workspace is kept in {ws}")
    child_wall = time.perf_counter() - start
    result = json.loads((ws.parent / "result.json").read_text())
    row = table_row(size, result, shard_files(ws), child_wall)
    progress(f"{size} images: done, wall {row['wall_s']:.1f} s (process {child_wall:.0f} s)")
    if not args.keep:
        shutil.rmtree(ws.parent, ignore_errors=True)
    return row


def shard_files(ws: Path, round: int = 1) -> dict:
    """Rows, images and Parquet bytes of the round's committed shards (from its manifests)."""
    from storage.stats import round_files
    from storage.workspace import Workspace

    return round_files(Workspace(str(ws)), round)


COLUMNS = (("images", "images", "d"), ("wall s", "wall_s", ".1f"),
           ("label s/img", "labelling_s_per_img", ".4f"),
           ("store s/img", "storage_s_per_img", ".4f"), ("retrain s", "retrain_s", ".1f"),
           ("retr s/img", "retrain_s_per_img", ".4f"), ("orch %", "orchestration_pct", ".1f"),
           ("RSS MB", "peak_rss_mb", ".0f"), ("PQ B/img", "parquet_bytes_per_img", ".0f"),
           ("stats s", "class_stats_s", ".3f"), ("select s", "selection_s", ".3f"),
           ("marg s/img", "marginal_s_per_img", ".4f"))


def print_table(rows: list[dict]) -> None:
    ratios(rows)  # fills the marginal column
    print("\n" + "  ".join(f"{title:>11s}" for title, _, _ in COLUMNS))
    for row in rows:
        cells = [row.get(key) for _, key, _ in COLUMNS]
        print("  ".join(f"{'-':>11s}" if v is None else f"{v:>11{fmt}}"
                        for v, (_, _, fmt) in zip(cells, COLUMNS, strict=True)))
    print(flush=True)


def print_summary(summary: dict) -> None:
    def shown(value):
        return "n/a (needs 3 sizes)" if value is None else f"{value:.2f}x"

    print(f"marginal s/img, largest size / the size before: {shown(summary['marginal_ratio'])}"
          " (target <= 1.2)")
    print(f"peak RSS, largest size / the size before: {shown(summary['peak_rss_ratio'])} "
          "(target <= 1.2)")


def _record(rows: list[dict], summary: dict) -> None:
    """results/scale.json: the growth ratios and each size's wall time and peak RSS."""
    figures = [figure("marginal s/img, largest size / the size before", summary["marginal_ratio"]
                      and round(summary["marginal_ratio"], 2), "x", "<= 1.2"),
               figure("peak RSS, largest size / the size before", summary["peak_rss_ratio"]
                      and round(summary["peak_rss_ratio"], 2), "x", "<= 1.2")]
    for row in rows:
        n = row["images"]
        figures += [figure(f"{n} images: wall", round(row["wall_s"], 1), "s"),
                    figure(f"{n} images: orchestration", round(row["orchestration_pct"], 1), "%",
                           "< 5 at 1,000 images"),
                    figure(f"{n} images: peak RSS", round(row["peak_rss_mb"]), "MB")]
    record("scale", figures, title="A round's cost and memory as its images grow")


# ---- child: one round, then the queries, in a fresh process
def child(job_file: Path) -> None:
    from flows.prefect_env import configure_prefect

    configure_prefect()
    from prefect import flow

    from flows.config import RunConfig
    from flows.plan import data_plan, workspace
    from storage.query import run_sql
    from storage.samples import PseudoLabelSamples

    job = json.loads(job_file.read_text())
    cfg = RunConfig.model_validate(job["config"])

    @flow(name="bench-scale-warm-up")
    def warm_up() -> None:
        """Starts the temporary Prefect server, so the round's wall time does not hold it."""

    warm_up()
    phases, wall = timed_round(cfg)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    ws = workspace(cfg)
    start = time.perf_counter()
    stats = run_sql(ws, "SELECT * FROM class_stats")
    class_stats_s = time.perf_counter() - start
    start = time.perf_counter()
    selection = PseudoLabelSamples(ws, 1, data_plan(cfg).read_target,
                                   where=cfg.self_training.selection)
    selection_s = time.perf_counter() - start
    result = {"phases": phases, "wall_s": wall, "peak_rss_mb": peak,
              "class_stats_s": class_stats_s, "class_stats_rows": stats.num_rows,
              "selection_s": selection_s, "selected_images": len(selection)}
    (job_file.parent / "result.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
