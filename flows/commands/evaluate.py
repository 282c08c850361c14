"""`ovseg evaluate`: mIoU of a checkpoint on a labelled dataset (table, JSON, predicted maps)."""

from __future__ import annotations

from flows.commands import SPLIT_HELP
from ovseg_core.constants import DATASET_KINDS as KINDS


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="mIoU of a checkpoint on a labelled dataset",
        description="Evaluate with the paper's protocol (the model's input size, 768 for the "
                    "paper preset) or sliding windows; prints per-class IoU and mIoU.")
    parser.add_argument("--dataset", choices=KINDS, required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--split", default=None, help=SPLIT_HELP)
    parser.add_argument("--checkpoint", required=True,
                        help="checkpoint folder (model.safetensors + config.json), or its "
                        "model.safetensors")
    parser.add_argument("--save-predictions", metavar="DIR", help="write predicted label maps here")
    parser.add_argument("--json", metavar="FILE", help="write the numbers as JSON")
    parser.add_argument("--seen-classes", metavar="FILE",
                        help="classes.txt of the seen classes, for seen/unseen mIoU (default: "
                             "from a synthetic dataset's dataset.json when there is one)")
    parser.add_argument("--sliding", action="store_true", help="sliding-window inference")
    parser.add_argument("--size", type=int, help="inference size in px (default: model input size)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N images")
    parser.add_argument("--device")
    parser.set_defaults(handler=run)


def seen_mask(class_names: list[str], seen_file: str | None, root: str) -> list[bool] | None:
    """One bool per class: from --seen-classes, else a synthetic dataset.json at root or above."""
    from pathlib import Path

    from ovseg_core.data import read_classes_txt, read_synthetic_info

    if seen_file:
        seen = set(read_classes_txt(Path(seen_file)))
    else:
        for folder in (Path(root), Path(root).parent):
            if (folder / "dataset.json").exists():
                seen = set(read_synthetic_info(folder)["seen"])
                break
        else:
            return None
    return [name in seen for name in class_names]


def run(args) -> int:
    import json
    from pathlib import Path

    from flows.commands.paths import checkpoint_folder, existing

    existing(args.root, "--root", "dataset folder")
    if args.seen_classes:
        existing(args.seen_classes, "--seen-classes", "file")
    checkpoint = checkpoint_folder(args.checkpoint)

    from ovseg_core.data import open_dataset

    dataset = open_dataset(args.dataset, args.root, args.split)

    from ovseg_core.checkpoint import load_model
    from ovseg_core.device import pick_runtime
    from ovseg_core.inference import evaluate
    from ovseg_core.metrics import format_table

    runtime = pick_runtime(args.device)
    model = load_model(checkpoint)
    seen = seen_mask(dataset.class_names, args.seen_classes, args.root)
    save = Path(args.save_predictions) if args.save_predictions else None
    result = evaluate(model, dataset, runtime, seen=seen, save_predictions=save, size=args.size,
                      sliding=args.sliding, limit=args.limit)
    print(format_table(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0
