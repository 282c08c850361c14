"""`ovseg run`: the main job: stage one + N self-training rounds, resumable."""

from __future__ import annotations

import argparse

from ovseg_core.constants import DEFAULT_WORKSPACE


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
    _say("the job: stage one trains the model on the labelled source; each self-training "
         "round then labels the target images with the last model (label), sharpens the "
         "confident regions with SAM and checks their class with CLIP (refine), trains on "
         "those pseudo-labels (retrain) and measures the new model (evaluate)")
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


def round_table(records: list[dict], controls: dict[int, dict] | None = None) -> list[str]:
    """Lines of a per-round table: target mIoU, seen / unseen, pseudo-label quality, and what
    became of the gated regions (`flows.measures` names and explains each column); under
    round R, the row "control R" of its compute-matched control from `controls` (round ->
    the control's lineage record, as a dict), when it has one."""
    from flows.measures import MODEL_MEASURES, PSEUDO_LABEL_MEASURES, REGION_MEASURES, round_label

    figures = MODEL_MEASURES + PSEUDO_LABEL_MEASURES
    head = f"{'round':>9}  " + "  ".join(f"{m.column:>10}" for m in figures)
    lines = [head + "".join(f"  {m.column:>8}" for m in REGION_MEASURES)]
    for r in records:
        m, rows = r["metrics"], r["row_counts"]
        cells = "  ".join(_cell(m.get(f.key)) for f in figures)
        counts = "".join(f"  {_count(rows.get(f.key)):>8}" for f in REGION_MEASURES) \
            if "gated" in rows else ""
        lines.append(f"{round_label(r['round']):>9}  {cells}{counts}")
        control = (controls or {}).get(r["round"]) if r["round"] > 0 else None
        if control is not None:
            cells = "  ".join(_cell(control["metrics"].get(f.key)) for f in figures)
            lines.append(f"{round_label(r['round'], control=True):>9}  {cells}")
    first = records[0]["metrics"]
    if "clip_crop_unseen_top1" in first:
        lines.append(f"pretrained tiny CLIP, zero-shot on held-out unseen-class crops: top-1 "
                     f"{first['clip_crop_unseen_top1']:.2f} "
                     f"(chance {first['clip_crop_chance']:.2f})")
    return lines


def control_gain(records: list[dict], controls: dict[int, dict]) -> str | None:
    """One line: the last round's unseen target mIoU minus its control's; None when the last
    record is stage one, the round has no control, or either figure is missing."""
    last = records[-1]
    control = controls.get(last["round"]) if last["round"] > 0 else None
    if control is None:
        return None
    ours = last["metrics"].get("target_unseen_miou")
    theirs = control["metrics"].get("target_unseen_miou")
    if ours is None or theirs is None:
        return None
    return (f"round {last['round']}'s unseen gain over the control: {ours - theirs:+.1f} points "
            f"(unseen mIoU {ours:.1f}, the control's {theirs:.1f})")


def controls_of(workspace: str) -> dict[int, dict]:
    """Round -> its completed `control` lineage record (as a dict), from the store."""
    from storage.terms import COMPLETED, CONTROL
    from storage.workspace import Workspace

    return {r.round: r.to_dict() for r in Workspace(workspace).lineage()
            if r.stage == CONTROL and r.status == COMPLETED}


def table_legend(cfg) -> list[str]:
    """The lines under the table: what each column means and in what unit."""
    from flows.measures import (
        CONTROL_NAME,
        MODEL_MEASURES,
        PSEUDO_LABEL_MEASURES,
        REGION_MEASURES,
        ROUND_NAME,
        legend,
    )

    held_out = (f"the built-in world's {cfg.data.synthetic.target_val} held-out target images"
                if cfg.data.source is None else "data.target_eval")
    control = [f"  {CONTROL_NAME}"] if cfg.self_training.control else []
    return ["Columns ('-': not measured in that round; [the lineage key]):", f"  {ROUND_NAME}",
            *control, *legend(MODEL_MEASURES),
            f"              target mIoU is measured on {held_out}",
            *legend(PSEUDO_LABEL_MEASURES), "  region counts, over all the round's target "
            "images:", *legend(REGION_MEASURES)]


def _cell(value) -> str:
    return f"{'-':>10}" if value is None else f"{value:10.1f}"


def _count(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def sql_examples(command: str, workspace_flag: str) -> list[str]:
    """Queries worth a first look, each a command that runs as printed."""
    queries = (
        "SELECT round, class_name, n_regions, n_gated, n_accepted, n_clip_rejected, "
        "confidence_p50 FROM class_stats ORDER BY round, class_id",
        "SELECT round, stage, status, metrics FROM rounds ORDER BY round",
        "SELECT * FROM images_without_accepted LIMIT 10",
        "SELECT class_name, avg(sam_iou) AS sam, avg(agreement_iou) AS agree "
        "FROM pseudo_labels WHERE gated GROUP BY class_name",
    )
    return [f'  {command} sql "{q}"{workspace_flag}' for q in queries]


def _summary(cfg, records: list[dict], seconds: float) -> None:
    import shlex

    from flows.invocation import ovseg_command
    from storage.workspace import Workspace

    ws = Workspace(cfg.workspace)
    controls = controls_of(cfg.workspace) if cfg.self_training.control else {}
    _say(f"done in {seconds:.0f} s")
    gain = control_gain(records, controls)
    if gain is not None:
        _say(gain)
    print("\n" + "\n".join(round_table(records, controls)))
    print("\n".join(table_legend(cfg)))
    last = records[-1]["round"]
    report = ws.url(f"reports/round={last:03d}/index.md")
    print(f"\nEverything the run made is in the workspace {ws.root}:\n"
          f"  checkpoints   {ws.url('checkpoints')}  (one model per round; control/: the "
          f"rounds' controls)\n"
          f"  pseudo-labels {ws.url('pseudo_labels')}  (Parquet, one row per region)\n"
          f"  lineage       {ws.url('lineage')}  (one JSON record per round: config, figures)\n"
          f"  report        {report}\n"
          f"                (Markdown with pictures; open it in a Markdown viewer or look at "
          f"the PNGs beside it)\n")
    command = ovseg_command()
    flag = "" if cfg.workspace == DEFAULT_WORKSPACE else \
        f" --workspace {shlex.quote(cfg.workspace)}"
    print(f"Look inside with SQL ({command} sql --help lists the views and their columns):")
    print("\n".join(sql_examples(command, flag)))
