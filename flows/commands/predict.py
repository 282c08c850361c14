"""`ovseg predict`: segment any images with a vocabulary given at run time."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", help="segment images with any class names",
        description="Write a label map and an overlay picture with a legend for each image.")
    parser.add_argument("images", help="an image file or a folder of images")
    vocab = parser.add_mutually_exclusive_group(required=True)
    vocab.add_argument("--classes", help='class names separated by commas, e.g. "cat, dog, grass"')
    vocab.add_argument("--classes-file", help="classes.txt: one class per line (synonyms: 'a, b')")
    parser.add_argument("--checkpoint", help="checkpoint folder (or its model.safetensors); "
                        "without it a random tiny model is used (to try the command, not for "
                        "results)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--sliding", action="store_true", help="sliding-window inference")
    parser.add_argument("--size", type=int, help="inference size in px (default: model input size)")
    parser.add_argument("--device")
    parser.set_defaults(handler=run)


def run(args) -> int:
    import sys
    from pathlib import Path

    from flows.commands.paths import checkpoint_folder
    from ovseg_core.data import UnlabeledImages, parse_class_argument, read_classes_txt

    names = (parse_class_argument(args.classes) if args.classes is not None
             else read_classes_txt(Path(args.classes_file)))
    checkpoint = checkpoint_folder(args.checkpoint) if args.checkpoint else None
    images = UnlabeledImages(args.images, warn=False)  # unreadable ones: reported at the end

    from PIL import Image

    from ovseg_core.checkpoint import load_model
    from ovseg_core.config import preset
    from ovseg_core.data import write_label
    from ovseg_core.device import pick_runtime
    from ovseg_core.inference import predict_label_map
    from ovseg_core.modeling.build import build_model
    from ovseg_core.progress import track
    from ovseg_core.visualize import overlay

    runtime = pick_runtime(args.device)
    if checkpoint:
        model = load_model(checkpoint)
    else:
        print("warning: no --checkpoint; using a random tiny model, its output is meaningless",
              file=sys.stderr)
        model = build_model(preset("tiny"))
    model.to(runtime.device).eval()
    out = Path(args.out)
    text = model.encode_vocabulary(names)
    written = 0
    for image_id, image in track(images.iter_images(), "predict", total=len(images),
                                 unit="images"):
        label = predict_label_map(model, image, text, runtime, size=args.size, sliding=args.sliding)
        stem = Path(image_id).with_suffix("")
        write_label(out / "labels" / stem, label, len(names))
        (out / "overlays" / stem).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(overlay(image, label, names)).save(out / "overlays" / f"{stem}.png")
        written += 1
    for image_id, reason in images.skipped:
        print(f"skipped {image_id}: {reason}", file=sys.stderr)
    print(f"wrote {written} label maps to {out / 'labels'} and overlays to {out / 'overlays'}")
    return 0
