"""`ovseg review export|import`: send doubtful images to CVAT or Label Studio, take corrections
back into the store's `human_labels` table (retraining then prefers them)."""

from __future__ import annotations

import argparse

from ovseg_core.constants import DEFAULT_WORKSPACE

TOOLS = ("cvat", "label-studio")

EPILOG = """The images exported are those with a doubtful row: gated regions whose SAM mask is
not trusted, whose SAM IoU is below 0.8, or whose class CLIP did not pick (or --where, an SQL
condition over pseudo_labels);
each shows all of its masks. Corrections imported replace that image's pseudo-labels when
the next round retrains.

examples:
  ovseg review export --round 1 --tool cvat --out review/r1 --limit 50
  ovseg review export --round 1 --tool label-studio --out review/r1-ls \\
      --image-root http://localhost:8000/images
  ovseg review import review/r1-corrected.json
  ovseg sql "SELECT image_id, class_name, area, annotator FROM human_labels\""""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "review", help="export doubtful pseudo-labels to CVAT / Label Studio, import fixes",
        description="The human review loop: export, correct in a labelling tool, import.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="review_command", metavar="{export,import}", required=True)
    export = sub.add_parser("export", help="write the files CVAT or Label Studio imports")
    export.add_argument("--round", type=int, required=True, help="a committed round (>= 1)")
    export.add_argument("--tool", choices=TOOLS, required=True)
    export.add_argument("--out", required=True, help="output folder, a path or fsspec URL")
    export.add_argument("--where", default=None, help="SQL condition over pseudo_labels "
                        "choosing the images (default: the doubtful rows)")
    export.add_argument("--limit", type=int, default=None, help="at most N images")
    export.add_argument("--image-root", default=None, metavar="PATH_OR_URL_PREFIX",
                        help="where the images are: a folder (default: the run's target "
                        "images) or a URL prefix the tool loads them from")
    importer = sub.add_parser("import", help="read corrected annotations into human_labels")
    importer.add_argument("file", help="CVAT 'COCO 1.0' export (.json or .zip) or Label "
                          "Studio JSON export")
    importer.add_argument("--round", type=int, default=None,
                          help="the round that was reviewed (default: the newest committed)")
    importer.add_argument("--allow-unedited", action="store_true",
                          help="store the file even when its masks are the round's "
                          "pseudo-labels unchanged (refused without it: such a file is "
                          "usually ovseg's own export, not a person's corrections)")
    for p in (export, importer):
        p.add_argument("--workspace", default=DEFAULT_WORKSPACE, help="workspace root, a path "
                       f"or fsspec URL (default {DEFAULT_WORKSPACE})")
    parser.set_defaults(handler=run)


def run_context(ws) -> tuple[list[str] | None, str | None]:
    """(target vocabulary, target image folder) of the run that wrote `ws`, from its newest
    lineage config; (None, None) when that config cannot be rebuilt here."""
    from pydantic import ValidationError

    from flows.config import RunConfig
    from flows.plan import data_plan, resolve_refs
    from ovseg_core.errors import OvsegError
    from storage.terms import TRAINING_STAGES

    records = [r for r in ws.lineage() if r.stage in TRAINING_STAGES]
    if not records:
        return None, None
    try:
        cfg = RunConfig.model_validate({**records[-1].config, "workspace": ws.root})
        return list(data_plan(cfg).target_classes), resolve_refs(cfg)["target"].root
    except (ValidationError, OvsegError, OSError, ValueError):
        return None, None


def run(args: argparse.Namespace) -> int:
    import os

    from storage.errors import StorageError
    from storage.fsio import local_path
    from storage.review_export import export_review, local_files_root, store_vocabulary
    from storage.review_import import import_review
    from storage.workspace import Workspace

    if local_path(args.workspace) is not None and not os.path.isdir(args.workspace):
        raise StorageError(f"no workspace at {args.workspace} (set --workspace)")
    ws = Workspace(args.workspace)
    classes, image_root = run_context(ws)
    classes = classes or store_vocabulary(ws)
    if args.review_command == "export":
        done = export_review(ws, args.round, args.out, args.tool, classes, where=args.where,
                             limit=args.limit, image_root=args.image_root or image_root)
        if not done["images"]:
            print(f"no image of round {args.round} has a row matching "
                  f"{args.where or 'the doubtful rows'}: nothing to review")
            return 0
        print(f"wrote {done['images']} image(s), {done['masks']} mask(s) for {args.tool}:")
        for path in done["files"]:
            print(f"  {path}")
        root = args.image_root or image_root
        if args.tool == "label-studio" and root and local_path(root) is not None:
            folder = os.path.abspath(local_path(root))
            print("Label Studio serves these images when started with "
                  f"LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true "
                  f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={local_files_root(root)} and the "
                  "project has a Local files storage (Settings > Cloud Storage > Add Source "
                  f"Storage, not synced) with the absolute path {folder}")
        return 0
    done = import_review(ws, args.file, classes, round=args.round,
                         allow_unedited=args.allow_unedited)
    if not done["new"]:
        print(f"{args.file} was imported before (sha256 {done['sha256'][:12]}): nothing added")
        return 0
    print(f"imported {done['rows']} mask(s) on {done['images']} image(s) of round "
          f"{done['round']} from {args.file} ({done['tool']}, sha256 {done['sha256'][:12]}); "
          'see them with: ovseg sql "SELECT * FROM human_labels"')
    empty = done["without_masks"]
    if empty:
        print(f"{len(empty)} image(s) listed without any mask keep their pseudo-labels "
              f"(ovseg cannot tell 'nothing here' from 'not reviewed'): {', '.join(empty[:5])}"
              + (" ..." if len(empty) > 5 else ""))
    return 0
