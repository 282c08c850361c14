"""`ovseg run`: the main job: stage one + N self-training rounds, resumable."""

from __future__ import annotations

import argparse

from ovseg_core.constants import DEFAULT_WORKSPACE

SQL_EXAMPLES = (
    'ovseg sql "SELECT round, class_name, n_regions, n_gated, n_accepted, n_clip_rejected, '
    'confidence_p50 FROM class_stats ORDER BY round, class_id"',
    'ovseg sql "SELECT round, stage, status, metrics FROM rounds ORDER BY round"',
    'ovseg sql "SELECT * FROM images_without_accepted LIMIT 10"',
    'ovseg sql "SELECT class_name, avg(sam_iou) AS sam, avg(agreement_iou) AS agree '
    'FROM pseudo_labels WHERE gated GROUP BY class_name"',
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="run stage one and the self-training rounds (resumes after a crash)",
        description="Run stage-one training, then self-training rounds, through Prefect. With "
        "no arguments: the built-in synthetic dataset, the tiny preset, CPU, no server. "
        "Re-running continues where a failed or killed run stopped.")
    p.add_argument("--config", help="YAML run config (see README: 'Configuration')")
    p.add_argument("--workspace", help="store root: a path or fsspec URL "
                   "(default: ./ovseg-workspace)")
    p.add_argument("--rounds", type=int, help="number of self-training rounds")
    p.add_argument("--seed", type=int, help="random seed (also picks the synthetic dataset)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when present)")
    p.add_argument("--redo-round", type=int, metavar="R",
                   help="forget what round R and every later round committed (they descend "
                   "from R's checkpoint) and compute them again")
    p.add_argument("--accept-round", type=int, metavar="R", action="append", default=[],
                   help="let round R retrain even when a quality-gate check fails (adds R to "
                   "quality.accept_rounds; repeatable)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from flows.prefect_env import configure_prefect

    home = configure_prefect()
    import time

    cfg = run_config(args)
    from flows.plan import resolve_refs
    from flows.preflight import check_config

    check_config(cfg)  # the flows check again; here a bad setting fails before Prefect starts
    resolve_refs(cfg)
    _say(f"workspace {cfg.workspace} | preset {cfg.model.preset} | "
         f"{cfg.self_training.rounds} round(s) | Prefect home {home}")
    start = time.perf_counter()
    from flows.pipeline import self_training

    if args.redo_round is not None:
        _redo(cfg, args.redo_round)
    _say("starting Prefect (a temporary local server unless PREFECT_API_URL is set)...")
    records = self_training(cfg, max(cfg.self_training.rounds, args.redo_round or 0))
    _summary(cfg, records, time.perf_counter() - start)
    return 0


def run_config(args: argparse.Namespace):
    """The run's `RunConfig`: the YAML file with the command line's settings over it
    (`--accept-round` adds to quality.accept_rounds); OvsegError when it is invalid."""
    import yaml
    from pydantic import ValidationError

    from flows.config import load_config
    from ovseg_core.errors import OvsegError

    try:
        cfg = load_config(args.config, workspace=args.workspace, seed=args.seed,
                          device=args.device, **{"self_training.rounds": args.rounds})
    except (ValidationError, ValueError, FileNotFoundError, yaml.YAMLError) as exc:
        raise OvsegError(f"invalid configuration: {_first_line(exc)}") from None
    cfg.quality.accept_rounds = sorted({*cfg.quality.accept_rounds, *args.accept_round})
    return cfg


def _redo(cfg, round: int) -> None:
    """Forget round `round` and every later one (the run then recomputes them); OvsegError
    unless `round` is a self-training round this workspace has started."""
    from flows import steps
    from flows.context import TaskContext
    from ovseg_core.errors import OvsegError
    from storage.workspace import Workspace

    ws = Workspace(cfg.workspace)
    known = sorted({r.round for r in ws.lineage()} | set(ws.rounds()))
    if round < 1 or round not in known:
        rounds = ", ".join(map(str, known)) or "none"
        raise OvsegError(f"--redo-round {round}: no such self-training round in "
                         f"{cfg.workspace} (rounds there: {rounds}; round 0 is stage one)")
    _say(steps.redo_round(TaskContext.open(cfg), round))


def _first_line(exc: Exception) -> str:
    return " ".join(str(exc).split("\n")[:3])


def _say(message: str) -> None:
    print(f"[ovseg] {message}", flush=True)


ROUND_COLUMNS = (("mIoU", "target_miou"), ("seen", "target_seen_miou"),
                 ("unseen", "target_unseen_miou"), ("PL refined", "pl_refined_miou"),
                 ("PL coarse", "pl_coarse_miou"), ("PL cover", "pl_refined_coverage"))
"""Per-round figures of the summary: target mIoU (%) and pseudo-label quality (%)."""


def round_table(records: list[dict]) -> list[str]:
    """Lines of a per-round table: target mIoU, seen / unseen, pseudo-label quality, and what
    became of the gated regions: SAM trusted, CLIP rejected, painted with SAM's mask."""
    head = f"{'round':>5}  " + "  ".join(f"{name:>10}" for name, _ in ROUND_COLUMNS)
    lines = [head + "  gated  trusted  CLIP-rej  refined  SAM IoU"]
    for r in records:
        m, rows = r["metrics"], r["row_counts"]
        cells = "  ".join(_cell(m.get(key)) for _, key in ROUND_COLUMNS)
        sam = rows.get("sam_iou_mean")
        rejected = rows.get("clip_rejected", "-")  # absent from older lineage records
        extra = (f"  {rows['gated']:>5}  {rows['accepted']:>7}  {rejected!s:>8}"
                 f"  {rows['refined']:>7}  {sam:7.3f}" if "gated" in rows
                 and sam is not None else "")
        lines.append(f"{r['round']:>5}  {cells}{extra}")
    first = records[0]["metrics"]
    if "clip_crop_unseen_top1" in first:
        lines.append(f"pretrained tiny CLIP, zero-shot on held-out unseen-class crops: top-1 "
                     f"{first['clip_crop_unseen_top1']:.2f} "
                     f"(chance {first['clip_crop_chance']:.2f})")
    return lines


def _cell(value) -> str:
    return f"{'-':>10}" if value is None else f"{value:10.1f}"


def _summary(cfg, records: list[dict], seconds: float) -> None:
    from storage.workspace import Workspace

    ws = Workspace(cfg.workspace)
    _say(f"done in {seconds:.0f} s")
    print("\n" + "\n".join(round_table(records)))
    last = records[-1]["round"]
    print(f"\nResults in {ws.root}:\n"
          f"  checkpoints   {ws.url('checkpoints')}\n"
          f"  pseudo-labels {ws.url('pseudo_labels')}  (Parquet, one row per region)\n"
          f"  lineage       {ws.url('lineage')}\n"
          f"  report        {ws.url(f'reports/round={last:03d}/index.md')}\n")
    flag = "" if cfg.workspace == DEFAULT_WORKSPACE else f" --workspace {cfg.workspace}"
    print("Try:")
    for example in SQL_EXAMPLES:
        print(f"  {example}{flag}")
