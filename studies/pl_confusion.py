"""Where a round's pseudo-labels go wrong: the pixel confusion of its painted label maps.

For a workspace whose target has held-out labels (the built-in world), prints two matrices of
pixel counts, rows: the label's class, columns: the painted class (and "none": labelled
pixels nothing paints): the map retraining uses ("refined": the rows of the run's selection)
and every gated region's coarse mask ("coarse", what SAM and CLIP were given). The figures
behind `pl_*` in the lineage and the report (`flows.quality`).

    uv run python studies/pl_confusion.py ovseg-workspace --round 1
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace")
    parser.add_argument("--round", type=int, default=1)
    args = parser.parse_args()
    from flows.plan import data_plan
    from flows.quality import painted_scores
    from storage.workspace import Workspace

    cfg = round_config(args.workspace, args.round)
    scored = painted_scores(Workspace(args.workspace), args.round, data_plan(cfg),
                            cfg.self_training.selection)
    if scored is None:
        raise SystemExit("the target has no held-out labels for its images")
    scores, images = scored
    print(f"round {args.round}, {images} images; rows: label class, columns: painted class")
    for kind, score in scores.items():
        names = score.matrix.class_names
        unpainted = score.labelled - score.covered
        print(f"\n{kind}")
        print_matrix(score.matrix.counts, names, unpainted_total=unpainted)


def round_config(workspace: str, round: int):
    """The RunConfig a finished self-training round of `workspace` ran with."""
    from flows.config import RunConfig
    from storage.workspace import Workspace

    records = [r for r in Workspace(workspace).lineage()
               if r.stage == "self_training_round" and r.round == round]
    if not records:
        raise SystemExit(f"{workspace}: no completed round {round}")
    return RunConfig.model_validate(records[0].config | {"workspace": workspace})


def print_matrix(counts: np.ndarray, names: list[str], unpainted_total: int) -> None:
    """The (N, N) counts with short names; `unpainted_total`: labelled pixels left unpainted."""
    short = [n[:8] for n in names]
    print(f"{'':>9}" + "".join(f"{s:>9}" for s in short))
    for name, row in zip(short, counts, strict=True):
        print(f"{name:>9}" + "".join(f"{int(v):>9}" for v in row))
    print(f"labelled pixels nothing paints: {unpainted_total}")


if __name__ == "__main__":
    main()
