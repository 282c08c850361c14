"""`ovseg train`: supervised training (stage one) of an STSeg model on a labelled dataset."""

from __future__ import annotations

import argparse

from ovseg_core.constants import DATASET_KINDS as KINDS

EPILOG = """example (the synthetic dataset, about a minute on 2 idle CPU cores):
  ovseg data synth data/synth
  ovseg train --dataset generic --root data/synth/source --out runs/stage1 --preset tiny
  ovseg evaluate --dataset generic --root data/synth/source --split val --checkpoint runs/stage1

data parallel on 4 GPUs of one machine (--batch-size is the global batch, split over ranks):
  torchrun --standalone --nproc-per-node 4 .venv/bin/ovseg train --dataset generic \\
      --root data/synth/source --out runs/stage1 --preset tiny --batch-size 8"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model on a labelled dataset (stage one)",
        description="Supervised training; resumes from OUT's checkpoint when it holds one.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=KINDS, required=True, help="dataset layout")
    parser.add_argument("--root", required=True, help="dataset root folder")
    parser.add_argument("--split", default="train", help="split to train on (default train)")
    parser.add_argument("--out", required=True, help="checkpoint folder (resumed if present)")
    parser.add_argument("--preset", choices=("tiny", "mobile", "paper"), default="tiny",
                        help="model preset (default tiny)")
    parser.add_argument("--init", metavar="CKPT",
                        help="start from this checkpoint folder's weights")
    parser.add_argument("--clip-weights", metavar="FILE",
                        help="local open_clip checkpoint for the CLIP encoder (never downloaded)")
    parser.add_argument("--sam-checkpoint", metavar="FILE",
                        help="local SAM .pth / mobile_sam.pt (default: $OVSEG_WEIGHTS_DIR)")
    parser.add_argument("--steps", type=int, help="optimizer steps (default: per preset)")
    parser.add_argument("--batch-size", type=int,
                        help="global batch (split over torchrun's processes; default: per preset)")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--crop-size", type=int, help="crop side in px (default: model input size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, help="data loader worker processes")
    parser.add_argument("--device", help='"cuda", "cpu", "cuda:1" (default: CUDA when present; '
                        'under torchrun "cuda" means cuda:LOCAL_RANK)')
    parser.add_argument("--no-resume", action="store_true", help="ignore a checkpoint in --out")
    parser.set_defaults(handler=run)


def train_config(args, input_size: int):
    """The TrainConfig of the parsed flags: they fill the run config's `train` settings, which
    `flows.training.train_config` translates (preset defaults, then the settings given)."""
    from pydantic import ValidationError

    from flows.config import TrainSettings
    from flows.training import train_config as translate
    from ovseg_core.errors import OvsegError

    flags = {"steps": "steps", "batch_size": "batch_size", "lr": "lr",
             "crop_size": "crop_size", "workers": "num_workers"}  # flag -> TrainSettings name
    given = {key: getattr(args, flag) for flag, key in flags.items()
             if getattr(args, flag) is not None}
    try:
        settings = TrainSettings(**given)
    except ValidationError as exc:
        flag = {key: flag for flag, key in flags.items()}
        raise OvsegError("; ".join(f"--{flag[e['loc'][0]].replace('_', '-')}: {e['msg']}"
                                   for e in exc.errors())) from None
    return translate(settings, args.preset, input_size, args.seed)


def run(args) -> int:
    from ovseg_core import distributed

    runtime = distributed.init_from_env(args.device)  # joins torchrun's process group, if any
    try:
        return _train(args, runtime)
    finally:
        distributed.shutdown()


def _train(args, runtime) -> int:
    from pathlib import Path

    from ovseg_core import distributed
    from ovseg_core.checkpoint import load_model
    from ovseg_core.config import preset
    from ovseg_core.data import open_dataset
    from ovseg_core.modeling.build import build_model
    from ovseg_core.train import train

    samples = open_dataset(args.dataset, args.root, args.split)
    weights = {}
    if args.clip_weights:
        weights["clip"] = {"pretrained": args.clip_weights}
    if args.sam_checkpoint:
        weights["sam"] = {"checkpoint": args.sam_checkpoint}
    model = (load_model(args.init) if args.init
             else build_model(preset(args.preset, **weights), seed=args.seed))
    cfg = train_config(args, model.config.input_size)
    main, world = distributed.is_main(), distributed.world_size()
    if main:
        where = f"{world} processes, {runtime.device.type}" if world > 1 else str(runtime.device)
        print(f"training {args.preset} on {len(samples)} images, "
              f"{len(samples.class_names)} classes, "
              f"{cfg.steps} steps of batch {cfg.batch_size} ({where})")
    result = train(model, samples, samples.class_names, [True] * len(samples.class_names), cfg,
                   Path(args.out), runtime, resume=not args.no_resume)
    if not main:
        return 0
    loss = "n/a" if result.final_loss is None else f"{result.final_loss:.4f}"
    print(f"done: step {result.steps}, final loss {loss}, {result.wall_s:.1f} s; "
          f"checkpoint {result.out_dir} (sha256 {result.checkpoint_sha256[:12]})")
    return 0
