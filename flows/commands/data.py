"""`ovseg data synth OUT` (the generated dataset) and `ovseg data info` (check a dataset's
layout)."""

from __future__ import annotations

from flows.commands import SPLIT_HELP
from ovseg_core.constants import DATASET_KINDS as KINDS
from ovseg_core.constants import SYNTHETIC_WORLD as W


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("data", help="make the synthetic dataset; check a dataset",
                                   description="Dataset tools.")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    synth = sub.add_parser(
        "synth", help="write the small synthetic dataset (seen source, target with unseen classes)",
        description="Write a deterministic synthetic dataset in the generic layout: "
                    "OUT/source/{train,val}, OUT/target, OUT/target_val, OUT/dataset.json. "
                    "The defaults make the main job's world (`ovseg run` without data "
                    f"settings): {W['train']} + {W['val']} labelled source images, "
                    f"{W['target']} target images to self-train on and {W['target_val']} "
                    "held-out labelled target images.")
    synth.add_argument("out", help="output folder (must not hold a dataset yet)")
    synth.add_argument("--seed", type=int, default=0, help="default 0, the main job's seed")
    synth.add_argument("--size", type=int, default=128, help="image side in px (default 128)")
    synth.add_argument("--train", type=int, default=W["train"],
                       help=f"source training images (default {W['train']})")
    synth.add_argument("--val", type=int, default=W["val"],
                       help=f"source validation images (default {W['val']})")
    synth.add_argument("--target", type=int, default=W["target"],
                       help=f"target images to self-train on (default {W['target']})")
    synth.add_argument("--target-val", type=int, default=W["target_val"],
                       help="held-out labelled target images in OUT/target_val (default "
                       f"{W['target_val']})")
    synth.set_defaults(handler=run)
    info = sub.add_parser(
        "info", help="open a dataset, read some samples and print its vocabulary and label counts")
    info.add_argument("--dataset", choices=KINDS, required=True)
    info.add_argument("--root", required=True)
    info.add_argument("--split", default=None, help=SPLIT_HELP)
    info.add_argument("--check", type=int, default=20,
                      help="samples to read and check (default 20; 0 = all)")
    info.set_defaults(handler=run)


def run(args) -> int:
    if args.data_command == "synth":
        return _synth(args)
    return _info(args)


def _synth(args) -> int:
    from ovseg_core.data import read_synthetic_info, write_synthetic_dataset

    out = write_synthetic_dataset(args.out, seed=args.seed, image_size=args.size,
                                  num_train=args.train, num_val=args.val, num_target=args.target,
                                  num_target_val=args.target_val)
    info = read_synthetic_info(out)
    print(f"wrote {out}: source {info['source']['train']} train + {info['source']['val']} val "
          f"images, target {info['target']['images']} images + {info['target']['val']} held out")
    print(f"seen:   {', '.join(info['seen'])}")
    print(f"unseen: {', '.join(info['unseen'])}")
    return 0


def _info(args) -> int:
    import numpy as np

    from ovseg_core.constants import IGNORE_INDEX
    from ovseg_core.data import open_dataset
    from ovseg_core.progress import track

    ds = open_dataset(args.dataset, args.root, args.split)
    print(f"{args.dataset} at {args.root}: {len(ds)} images, {len(ds.class_names)} classes, "
          f"labels: {'yes' if ds.has_labels else 'no'}")
    if not ds.has_labels:
        return 0
    count = len(ds) if args.check == 0 else min(args.check, len(ds))
    pixels = np.zeros(len(ds.class_names) + 1, dtype=np.int64)
    for i in track(range(count), "check", unit="images"):
        _, label = ds[i]
        ids = np.where(label == IGNORE_INDEX, len(ds.class_names), label)
        pixels += np.bincount(ids.ravel(), minlength=pixels.size)
    print(f"checked {count} samples: sizes and class ids are valid")
    top = np.argsort(-pixels[:-1])[:10]
    for cid in top:
        if pixels[cid]:
            print(f"  {ds.class_names[cid]:<30} {100 * pixels[cid] / pixels.sum():6.2f}% of pixels")
    print(f"  {'(ignore)':<30} {100 * pixels[-1] / pixels.sum():6.2f}% of pixels")
    return 0
