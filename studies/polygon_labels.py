"""Does a polygon label, by itself, turn SAM's gain into a loss? A controlled refine-check.

The quokka and labelme's VOC photos, the refine-check sets where SAM is level or lower, are
labelled with hand-drawn polygons; every set with pixel-exact labels gains. To tell the label
from the image, this takes sets whose labels are pixel-exact and redraws each class's label as
polygons: every contour simplified (Douglas-Peucker, `--tolerances` in pixels; holes kept by
the even-odd rule) and filled again. On each image it then scores, with refine-check's own
steps (`check_sample`, real MobileSAM, defaults):

- exact: the exact label degraded, refined, scored against the exact label (refine-check);
- same masks vs polygons: the same coarse and refined masks scored against the polygon label
  (only the ground truth changes);
- polygons: the polygon label degraded, refined and scored against itself (refine-check on a
  polygon-labelled copy of the set).

Prints the polygons' vertices per (image, class) and the coarse and refined mIoU of each.

    uv run --extra dev python studies/polygon_labels.py --tolerances 0 2 4 8 16 \
        --voc out/scenetext out/radiomics out/nuclei    # folders: studies/data/*_voc.py
"""

from __future__ import annotations

import argparse

import numpy as np

from ovseg_core.selftrain.polygon_labels import polygon_label
from storage.results import figure, record


def score_set(refiner, names: list[str], samples, tolerances: list[float],
              ) -> dict[float, dict[str, float]]:
    """{tolerance: mean vertices per (image, class) pair (all its polygons) and the
    coarse/refined mIoU of the three scorings over (image, class) pairs}. The exact label is
    checked once per image; each tolerance adds one check of its polygon label."""
    from ovseg_core.selftrain import refine_check as rc

    background = 0 if names[0].lower() in rc.BACKGROUND_NAMES else None
    kinds = ("exact_c", "exact_r", "same_c", "same_r", "poly_c", "poly_r", "vertices")
    scores = {t: {k: [] for k in kinds} for t in tolerances}
    for sample in samples:
        pairs, _, coarse, refined = rc.check_sample(refiner, sample, len(names), background)
        classes = [p["class_id"] for p in pairs]
        for t in tolerances:
            poly, v = polygon_label(sample.label, classes, t, rc.VOC_VOID)
            poly_pairs, *_ = rc.check_sample(refiner, rc.VocSample(sample.image_id, sample.rgb,
                                                                   poly), len(names), background)
            s = scores[t]
            s["vertices"].append(sum(v) / max(len(classes), 1))
            s["exact_c"] += [p["coarse_iou"] for p in pairs]
            s["exact_r"] += [p["refined_iou"] for p in pairs]
            s["same_c"] += list(rc.class_ious(coarse, poly, classes).values())
            s["same_r"] += list(rc.class_ious(refined, poly, classes).values())
            s["poly_c"] += [p["coarse_iou"] for p in poly_pairs]
            s["poly_r"] += [p["refined_iou"] for p in poly_pairs]
    return {t: {k: float(np.mean(v)) for k, v in s.items()} for t, s in scores.items()}


def labelled_sets(builtin: list[str], folders: list[str]) -> dict[str, tuple[list[str], list]]:
    """{set name: (class names, samples)} of the named built-in sets and VOC folders."""
    from ovseg_core.selftrain import refine_check as rc

    sets = {}
    if builtin:
        every = rc.builtin_sets()
        sets.update({name: (every[name].names, every[name].samples) for name in builtin})
    for folder in folders:
        sets[folder] = rc.read_voc_folder(folder)
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builtin", nargs="*", default=["voc", "arc2017"],
                        choices=("voc", "arc2017"), help="built-in sets with exact labels")
    parser.add_argument("--voc", nargs="*", default=[], metavar="FOLDER",
                        help="VOC folders with exact labels (e.g. out/scenetext)")
    parser.add_argument("--tolerances", type=float, nargs="+", default=[2.0, 4.0, 8.0],
                        help="Douglas-Peucker tolerances in pixels (0: every contour point)")
    args = parser.parse_args()
    import torch

    from ovseg_core.modeling.sam_encoder import build_sam
    from ovseg_core.selftrain import SamRefiner

    refiner = SamRefiner(build_sam("vit_t", None))  # the real MobileSAM, refine-check's defaults
    print("set, tolerance px, vertices per (image, class) | coarse -> refined mIoU: exact "
          "label | same masks vs polygons | polygon label degraded and refined")
    figures = []
    with torch.inference_mode():
        for name, (names, samples) in labelled_sets(args.builtin, args.voc).items():
            for tolerance, r in score_set(refiner, names, samples, args.tolerances).items():
                cells = [f"{r[k + '_c']:.3f} -> {r[k + '_r']:.3f} "
                         f"({r[k + '_r'] - r[k + '_c']:+.3f})" for k in ("exact", "same", "poly")]
                print(f"{name} {tolerance:g} {r['vertices']:.0f} | " + " | ".join(cells),
                      flush=True)
                figures.append(figure(
                    f"{name} at {tolerance:g} px: refined - coarse, exact label / polygon label",
                    f"{100 * (r['exact_r'] - r['exact_c']):+.1f} / "
                    f"{100 * (r['poly_r'] - r['poly_c']):+.1f}", "points"))
    record("polygon_labels", figures, kind="study",
           title="Does a polygon label by itself turn SAM's gain into a loss?")


if __name__ == "__main__":
    main()
