"""`ovseg export`: a round's pseudo-labels as label maps (PNG / 16-bit TIFF), one COCO JSON or
YOLO segmentation labels."""

from __future__ import annotations

import argparse

from ovseg_core.constants import DEFAULT_WORKSPACE
from storage.formats import EXPORT_FORMATS

EPILOG = """The rows exported are the retraining selection (rows that paint: paints <> 'none')
unless --where gives another SQL condition over the pseudo_labels view.

examples:
  ovseg export --round 2 --format coco --out exports/round2
  ovseg export --round 1 --format png --out maps --where "confidence > 0.95 AND accepted"
  ovseg export --round 2 --format yolo --out yolo/r2   # then put the images in yolo/r2/images"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="write a round's pseudo-labels as label maps, COCO JSON or YOLO labels",
        description="Export one committed round's selected pseudo-labels.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--round", type=int, required=True, help="a committed round (>= 1)")
    parser.add_argument("--format", choices=EXPORT_FORMATS, default="png",
                        help="png (8-bit, or 16-bit above 254 classes), tiff (16-bit), coco, or "
                        "yolo (Ultralytics segmentation: labels/*.txt and data.yaml)")
    parser.add_argument("--out", required=True, help="output folder, a path or fsspec URL")
    parser.add_argument("--where", default=None, help="SQL condition over pseudo_labels")
    parser.add_argument("--workspace", default=DEFAULT_WORKSPACE,
                        help=f"workspace root, a path or fsspec URL (default {DEFAULT_WORKSPACE})")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from storage.export import export_round

    written = export_round(args.workspace, args.round, args.out, args.format, where=args.where)
    print(f"wrote {len(written)} file(s) under {args.out}")
    return 0
