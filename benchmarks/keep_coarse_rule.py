"""Would "keep the coarse mask when SAM barely changes it" help? (a rule not adopted)

On imgaug's quokka, refine-check's refined mask scores below the coarse one (0.966 vs 0.979):
SAM agrees with the coarse region at IoU 0.970 and moves its edge a few pixels to the fur,
off the hand-drawn polygon. A rule "a trusted SAM mask whose agreement IoU with the region
exceeds T paints the coarse region" would keep the coarse mask there. This measures it:

1. refine-check's four real labelled sets (the dev extra's three and stardist's nuclei, made
   by `benchmarks/nuclei_voc.py`), coarse vs refined mIoU, with the defaults and with the rule
   at each T;
2. the pseudo-labels of finished self-training workspaces of the built-in world, whose labels
   are pixel-exact: each round's precision-style pseudo-label mIoU (`flows.quality`) as
   stored, and with the rule applied to the stored rows (in a temporary copy).

Two more rules: `--thin`, drop SAM's edits thinner than a fraction of the band; `--area`, a
region larger than that many cost-volume cells (band x longest side, squared) paints its coarse
mask (the grid's error shrinks with the region's size, SAM's edge disagreements do not);
`--margins M`, a per-pixel rule on SAM's logits: a coarse pixel leaves the mask only where
SAM's logit is <= t - M, a pixel joins it only where the logit is > t + M (t: the refiner's
`mask_threshold`, -1), so SAM's unsure pixels (blurred or furry edges) keep the coarse label.
The last two measure on refine-check's sets only (the store keeps no logits).

    uv run --extra dev python benchmarks/keep_coarse_rule.py --nuclei out/nuclei \
        --thresholds 0.93 0.95 0.97 --thin 0.1 0.2 --area 40 80 --margins 1 2 4 \
        --workspaces ovseg-workspace
"""

from __future__ import annotations

import argparse
import glob
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from scipy import ndimage

from ovseg_core.modeling.sam_encoder import build_sam, default_sam_checkpoint
from ovseg_core.selftrain import SamRefiner
from ovseg_core.selftrain.refine_check import (
    LabelledSet,
    builtin_sets,
    check_set,
    read_voc_folder,
)
from ovseg_core.selftrain.refiner import RefinedRegion, RefinerSettings
from ovseg_core.selftrain.regions import Region


class KeepCoarseRefiner(SamRefiner):
    """The default refiner, except that a trusted SAM mask agreeing with its region above
    `keep_above` (None: never) or a region of more than `keep_cells` cost-volume cells paints
    the coarse region, with `thin` (a fraction of the band) SAM's edits thinner than that
    are dropped (a morphological opening of the edits), and with `margin` M SAM's mask
    is its single token's logits > t - M on the coarse region and > t + M off it."""

    keep_above: float | None = None
    keep_cells: float | None = None
    thin: float | None = None
    margin: float | None = None

    def _threshold(self, logits, regions: list[Region]) -> np.ndarray:
        if self.margin is None:
            return super()._threshold(logits, regions)
        t, logits = self.settings.mask_threshold, logits.cpu().numpy()  # (k, T, h, w)
        coarse = np.stack([r.mask for r in regions])[:, None]  # (k, 1, h, w)
        return np.where(coarse, logits > t - self.margin, logits > t + self.margin)

    def _judge(self, region: Region, mask: np.ndarray, sam_iou: float) -> RefinedRegion:
        judged = super()._judge(region, mask, sam_iou)
        cell = self.settings.band * max(region.mask.shape)
        keep = (self.keep_above is not None and judged.agreement_iou > self.keep_above) or \
            (self.keep_cells is not None and region.mask.sum() / cell**2 > self.keep_cells)
        if keep and judged.accepted:
            judged.refined_mask = region.mask.copy()
        if self.thin is not None and judged.refined_mask is not None:
            radius = max(1, round(self.thin * cell))
            y, x = np.ogrid[-radius:radius + 1, -radius:radius + 1]
            edits = ndimage.binary_opening(judged.refined_mask ^ region.mask,
                                           structure=x * x + y * y <= radius * radius)
            judged.refined_mask = region.mask ^ edits
        return judged


def refine_sets(nuclei: Path | None, thresholds: list[float], thin: list[float],
                area: list[float], margins: list[float]) -> None:
    refiner = KeepCoarseRefiner(build_sam("vit_t", default_sam_checkpoint("vit_t")))
    sets = builtin_sets()
    if nuclei is not None:
        names, samples = read_voc_folder(nuclei)
        sets["nuclei"] = LabelledSet(names, samples)
    rules = [("defaults", {})] + [(f"keep coarse above {t}", {"keep_above": t})
                                  for t in thresholds]
    rules += [(f"drop edits thinner than {f} band", {"thin": f}) for f in thin]
    rules += [(f"keep coarse over {a:g} cells", {"keep_cells": a}) for a in area]
    rules += [(f"logit margin {m:g}", {"margin": m}) for m in margins]
    print("refine-check, refined - coarse mIoU per set")
    for label, rule in rules:
        refiner.keep_above, refiner.keep_cells, refiner.thin, refiner.margin = (
            rule.get("keep_above"), rule.get("keep_cells"), rule.get("thin"), rule.get("margin"))
        with torch.inference_mode():
            results = {name: check_set(data, refiner) for name, data in sets.items()}
        cells = " ".join(f"{name} {r.coarse_miou:.3f}->{r.refined_miou:.3f} "
                         f"({r.refined_miou - r.coarse_miou:+.3f})" for name, r in results.items())
        print(f"  {label:34s} {cells}", flush=True)


def keeps_coarse(table, rule: str, value: float):
    """Which rows the rule paints with their coarse mask instead of SAM's: "agreement" (above
    `value`) or "cells" (region area above `value` cost-volume cells)."""
    if rule == "agreement":
        chosen = pc.greater(table["agreement_iou"], value)
    else:
        longest = pc.max_element_wise(table["image_height"], table["image_width"])
        cell = pc.multiply(pc.cast(longest, "double"), RefinerSettings().band)
        chosen = pc.greater(pc.divide(pc.cast(table["area"], "double"), pc.multiply(cell, cell)),
                            value)
    return pc.fill_null(pc.and_(pc.equal(table["paints"], "refined"), chosen), False)


def with_rule(workspace: str, copy: Path, rule: str, value: float) -> int:
    """Copy the workspace to `copy` and paint the rows `keeps_coarse` picks with their coarse
    mask; returns the rows changed."""
    shutil.copytree(workspace, copy)
    changed = 0
    for shard in glob.glob(str(copy / "pseudo_labels" / "round=*" / "shard=*.parquet")):
        table = pq.read_table(shard)
        swap = keeps_coarse(table, rule, value)
        changed += pc.sum(swap).as_py() or 0
        column = table.schema.get_field_index("refined_rle")
        table = table.set_column(column, table.schema.field(column),
                                 pc.if_else(swap, table["coarse_rle"], table["refined_rle"]))
        pq.write_table(table, shard)
    return changed


def pseudo_label_quality(workspace: str) -> dict[int, str]:
    """{round: "all/seen/unseen"} precision-style pseudo-label mIoU of each finished round."""
    from flows.config import RunConfig
    from flows.plan import data_plan
    from flows.quality import round_quality
    from storage.workspace import Workspace

    out = {}
    for record in Workspace(workspace).lineage():
        if record.stage != "self_training_round" or record.status != "completed":
            continue
        cfg = RunConfig.model_validate(record.config | {"workspace": workspace})
        m = round_quality(Workspace(workspace), record.round, data_plan(cfg),
                          cfg.self_training.selection)
        out[record.round] = (f"{m['pl_refined_miou']:.1f}/{m['pl_refined_seen_miou']:.1f}/"
                             f"{m['pl_refined_unseen_miou']:.1f}")
    return out


def workspaces(paths: list[str], thresholds: list[float], area: list[float]) -> None:
    print("pseudo-label mIoU all/seen/unseen per round (built-in world, pixel-exact labels)")
    rules = [("agreement", t, f"keep coarse above {t}") for t in thresholds]
    rules += [("cells", a, f"keep coarse over {a:g} cells") for a in area]
    for path in paths:
        print(f"  {path}: as stored {pseudo_label_quality(path)}")
        for rule, value, label in rules:
            with tempfile.TemporaryDirectory() as tmp:
                copy = Path(tmp) / "ws"
                changed = with_rule(path, copy, rule, value)
                print(f"    {label} ({changed} rows): {pseudo_label_quality(str(copy))}",
                      flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nuclei", type=Path, default=None,
                        help="the VOC folder benchmarks/nuclei_voc.py wrote")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.95])
    parser.add_argument("--thin", type=float, nargs="*", default=[],
                        help="also drop SAM's edits thinner than these fractions of the band")
    parser.add_argument("--area", type=float, nargs="*", default=[],
                        help="also keep the coarse mask of regions over these many cells")
    parser.add_argument("--margins", type=float, nargs="*", default=[],
                        help="also the per-pixel logit rule with these margins (logits)")
    parser.add_argument("--workspaces", nargs="*", default=[])
    args = parser.parse_args()
    refine_sets(args.nuclei, args.thresholds, args.thin, args.area, args.margins)
    if args.workspaces:
        workspaces(args.workspaces, args.thresholds, args.area)


if __name__ == "__main__":
    main()
