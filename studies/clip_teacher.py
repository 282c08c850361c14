"""How good a teacher is the tiny CLIP on the target? Per class, CLIP's zero-shot figures beside
its top-1 on the crops of the regions the rounds actually gated.

Per class of the built-in world: CLIP's zero-shot top-1 on held-out single-object images drawn
in the target's style and its dense zero-shot IoU on held-out target scenes (both
`ovseg_core.clip_pretrain.zero_shot_check` of the CLIP file), then, over the given workspaces'
completed rounds, the gated regions whose true class (the label's majority under the region) is
that class: how many, the share the model named right, and the share CLIP's check named right
(`flows.teacher`). Shares in %, IoU in %.

    uv run python studies/clip_teacher.py --clip FILE WORKSPACE [WORKSPACE ...]

`--record` writes the table as the `clip_teacher` results unit (docs/results.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def workspace_regions(path: Path) -> list[dict]:
    """Every gated region of the workspace's completed rounds: {"truth", "model", "clip"}."""
    from flows.config import RunConfig
    from flows.context import TaskContext
    from flows.teacher import region_truths
    from storage.query import connect
    from storage.terms import COMPLETED, SELF_TRAINING_ROUND
    from storage.workspace import Workspace

    records = [r for r in Workspace(str(path)).lineage()
               if r.stage == SELF_TRAINING_ROUND and r.status == COMPLETED]
    if not records:
        return []
    cfg = RunConfig.model_validate(records[0].config | {"workspace": str(path)})
    ctx = TaskContext.open(cfg)
    regions = []
    with connect(ctx.store) as con:
        for record in records:
            regions += region_truths(con, record.round, ctx.plan) or []
    return regions


def teacher_rows(clip: str, workspaces: list[Path]) -> list[dict]:
    """One row per class: zero-shot crop top-1 and dense IoU, and the gated regions' figures."""
    from flows.teacher import teacher_table
    from ovseg_core.clip_pretrain import zero_shot_check
    from ovseg_core.data.synth import world_classes

    check = zero_shot_check(clip)
    regions = [r for path in workspaces for r in workspace_regions(path)]
    names = world_classes()
    gated = {row["class"]: row for row in teacher_table(regions, names)}
    rows = []
    for name in names:
        row = gated.get(name, {})
        rows.append({
            "class": name,
            "crop_top1": _pct(check["crops"]["per_class_top1"][name]),
            "dense_iou": _round(check["dense"]["per_class"].get(name)),
            "gated_regions": row.get("regions", 0),
            "model_precision": _pct(row.get("model_precision")),
            "clip_region_top1": _pct(row.get("clip_top1"))})
    return rows


def table_lines(rows: list[dict]) -> list[str]:
    head = (f"{'class':<16}{'crop top-1':>11}{'dense IoU':>10}{'gated':>7}"
            f"{'model right':>12}{'CLIP right':>11}")
    lines = [head]
    for r in rows:
        cells = [_cell(r["crop_top1"], 11), _cell(r["dense_iou"], 10),
                 f"{r['gated_regions']:>7}", _cell(r["model_precision"], 12),
                 _cell(r["clip_region_top1"], 11)]
        lines.append(f"{r['class']:<16}" + "".join(cells))
    return lines


def _cell(value, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.1f}"


def _pct(share: float | None) -> float | None:
    return None if share is None else round(100.0 * share, 1)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", required=True, help="the tiny CLIP file the runs used")
    parser.add_argument("workspaces", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--record", action="store_true",
                        help="record the table as the clip_teacher results unit")
    args = parser.parse_args()
    rows = teacher_rows(args.clip, args.workspaces)
    print("\n".join(table_lines(rows)))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    if args.record:
        print(record_rows(rows, args))


def record_rows(rows: list[dict], args):
    """The per-class table as the `clip_teacher` results unit."""
    from storage.results import figure, record

    figures = [figure(f"{r['class']}: CLIP crop top-1 / dense IoU / gated regions / model "
                      "right / CLIP right",
                      " / ".join("-" if r[k] is None else str(r[k]) for k in
                                 ("crop_top1", "dense_iou", "gated_regions", "model_precision",
                                  "clip_region_top1")), "%, count")
               for r in rows]
    names = " ".join(str(p) for p in args.workspaces)
    return record("clip_teacher", figures, kind="study",
                  command=f"uv run python studies/clip_teacher.py --clip {args.clip} {names} "
                          "--record",
                  title="How good a teacher the tiny CLIP is on the target: zero-shot figures "
                        "per class beside its top-1 on the rounds' gated regions")


if __name__ == "__main__":
    main()
