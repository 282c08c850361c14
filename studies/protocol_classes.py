"""Which classes do the rounds keep and the control lose? Per class of the held-out target, the
IoU of stage one (A), the control (B) and the last round (D) of the protocol's main workspaces,
and the share of each class's pixels each model calls ground.

For every `seed<S>-main` workspace that `studies/selftrain_protocol.py` left (it keeps them
under its workdir), the three stored checkpoints are evaluated on the workspace's own held-out
target set (the same images and labels the protocol's figures come from; the checkpoints' hashes
are checked against the lineage). One JSON per workspace is written to `--runs`, so a stopped
run resumes. Prints, per class, the mean over workspaces of A, B and D's IoU, D - B and D - A,
and the ground share of A, B and D (rows: the label's class; % of its pixels predicted
"ground"). IoU and shares in %.

    uv run python studies/protocol_classes.py WORKSPACE [WORKSPACE ...] [--record]

`--record` writes the table as the `protocol_classes` results unit (docs/results.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROTOCOL_WORKDIR = "ovseg-studies/selftrain_protocol"
"""Where the protocol leaves its workspaces by default (the recorded command names them there)."""
ARMS = ("A", "B", "D")
"""Stage one, the control of the last round, the last round."""


def arm_checkpoints(records: list) -> dict[str, tuple[int, str, bool]]:
    """{arm: (round, checkpoint sha256, is the control)} from a main workspace's lineage: A is
    stage one, D the last completed round, B that round's control."""
    from storage.terms import COMPLETED, CONTROL, SELF_TRAINING_ROUND, STAGE_ONE

    done = [r for r in records if r.status == COMPLETED]
    rounds = [r for r in done if r.stage == SELF_TRAINING_ROUND]
    if not rounds:
        raise SystemExit("the workspace has no completed self-training round")
    last = max(rounds, key=lambda r: r.round)
    control = next((r for r in done if r.stage == CONTROL and r.round == last.round), None)
    stage_one = next((r for r in done if r.stage == STAGE_ONE), None)
    if control is None or stage_one is None:
        raise SystemExit(f"the workspace has no control of round {last.round} or no stage one")
    return {"A": (0, stage_one.checkpoint_sha256, False),
            "B": (last.round, control.checkpoint_sha256, True),
            "D": (last.round, last.checkpoint_sha256, False)}


def class_figures(result: dict, names: list[str]) -> dict:
    """{"iou": {class: %}, "predicted_as": {class: {predicted class: % of its pixels}}} from
    `evaluate`'s result (a class absent from the labels has an empty row)."""
    import numpy as np

    counts = np.asarray(result["confusion"], dtype=np.float64)
    rows = {}
    for i, name in enumerate(names):
        total = counts[i].sum()
        rows[name] = ({p: float(100 * counts[i, j] / total) for j, p in enumerate(names)}
                      if total else {})
    return {"iou": result["per_class"], "predicted_as": rows}


def measure_workspace(path: Path) -> dict:
    """Per arm, per class IoU and ground share of one main workspace (see the docstring)."""
    from flows.config import RunConfig
    from flows.context import TaskContext
    from ovseg_core.inference import evaluate
    from storage.workspace import Workspace

    records = Workspace(str(path)).lineage()
    cfg = RunConfig.model_validate(records[0].config | {"workspace": str(path)})
    ctx = TaskContext.open(cfg)
    dataset = ctx.plan.target_eval
    names = list(dataset.class_names)
    out = {"workspace": str(path), "names": names, "seen": ctx.plan.seen(names), "arms": {}}
    for arm, (round, sha, control) in arm_checkpoints(records).items():
        model = ctx.load_checkpoint(round, sha, cached=False, control=control)
        result = evaluate(model, dataset, ctx.runtime, seen=out["seen"],
                          desc=f"{path.name} {arm}")
        out["arms"][arm] = class_figures(result, names) | {
            "round": round, "checkpoint_sha256": sha, "seen_miou": result["seen_miou"],
            "unseen_miou": result["unseen_miou"]}
    return out


def mean(values: list) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def table_rows(results: list[dict]) -> list[dict]:
    """One row per class: mean IoU of A, B, D, D - B and D - A; the mean share of its pixels
    each arm calls ground; and the other class D most often calls it, with that share."""
    from ovseg_core.data.synth import GROUND

    names, seen = results[0]["names"], results[0]["seen"]
    rows = []
    for name, is_seen in zip(names, seen, strict=True):
        row = {"class": name, "seen": is_seen}
        for arm in ARMS:
            row[arm] = mean([r["arms"][arm]["iou"].get(name) for r in results])
            row[f"{arm}_ground"] = mean([r["arms"][arm]["predicted_as"][name].get(GROUND)
                                         for r in results])
        row["D-B"] = None if None in (row["D"], row["B"]) else row["D"] - row["B"]
        row["D-A"] = None if None in (row["D"], row["A"]) else row["D"] - row["A"]
        shares = {o: mean([r["arms"]["D"]["predicted_as"][name].get(o) for r in results])
                  for o in names if o not in (name, GROUND)}
        shares = {o: v for o, v in shares.items() if v is not None}
        row["D_mistaken_for"] = max(shares.items(), key=lambda kv: kv[1]) if shares else None
        rows.append(row)
    return rows


def _cell(value, width: int = 10) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.1f}"


def table_lines(rows: list[dict], n: int) -> list[str]:
    cols = ("A", "B", "D", "D-B", "D-A", "A_ground", "B_ground", "D_ground")
    head = (f"{'class':<16}{'':>7}" + "".join(f"{c:>10}" for c in cols)
            + "  D's commonest other class")
    lines = [f"per class over {n} workspaces: IoU (%), and % of the class's pixels called ground",
             head]
    for r in rows:
        other = "-" if not r["D_mistaken_for"] else (
            f"{r['D_mistaken_for'][0]} {r['D_mistaken_for'][1]:.1f}")
        lines.append(f"{r['class']:<16}{'seen' if r['seen'] else 'unseen':>7}"
                     + "".join(_cell(r[c]) for c in cols) + f"  {other}")
    return lines


def record_rows(rows: list[dict], workspaces: list[Path]):
    """The table as the `protocol_classes` results unit."""
    from storage.results import figure, record

    def cell(value):
        return "-" if value is None else f"{value:.1f}"

    def other(row):
        return "-" if not row["D_mistaken_for"] else (
            f"{row['D_mistaken_for'][0]} {row['D_mistaken_for'][1]:.1f}")

    figures = [figure(f"{r['class']} ({'seen' if r['seen'] else 'unseen'}): IoU A / B / D; "
                      "called ground A / B / D; D's commonest other class",
                      f"{cell(r['A'])} / {cell(r['B'])} / {cell(r['D'])}; "
                      f"{cell(r['A_ground'])} / {cell(r['B_ground'])} / {cell(r['D_ground'])}; "
                      f"{other(r)}", "%") for r in rows]
    names = " ".join(f"{PROTOCOL_WORKDIR}/{p.name}" for p in workspaces)
    return record("protocol_classes", figures, kind="study",
                  command=f"uv run python studies/protocol_classes.py {names} --record",
                  title=f"Per class, over {len(workspaces)} test seeds of the protocol: stage one "
                        "(A), the control (B) and round 2 (D), and how much of each class they "
                        "call ground")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspaces", nargs="+", type=Path)
    parser.add_argument("--runs", type=Path, default=REPO / "results" / "protocol_classes"
                        / "runs", help="one JSON per workspace (a stopped run resumes)")
    parser.add_argument("--record", action="store_true",
                        help="record the table as the protocol_classes results unit")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 beside other jobs: threads that outnumber "
                        "the cores slow torch down many times); default torch's")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    args.runs.mkdir(parents=True, exist_ok=True)
    results = []
    for path in args.workspaces:
        out = args.runs / f"{path.name}.json"
        if not out.exists():
            out.write_text(json.dumps(measure_workspace(path), indent=2) + "\n")
            print(f"measured {path}", flush=True)
        results.append(json.loads(out.read_text()))
    rows = table_rows(results)
    print("\n".join(table_lines(rows, len(results))))
    if args.record:
        print(record_rows(rows, args.workspaces))


if __name__ == "__main__":
    main()
