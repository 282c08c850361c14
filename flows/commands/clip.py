"""`ovseg clip pretrain --out FILE`: contrastive pretraining of the tiny CLIP on the caption corpus.

`ovseg clip check FILE` runs the zero-shot checks of an existing "ovseg-tiny" checkpoint.
"""

from __future__ import annotations


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "clip", help="pretrain the tiny CLIP on the synthetic world's captions; check it",
        description="The tiny open_clip model (ovseg-tiny) and its caption corpus.")
    sub = parser.add_subparsers(dest="clip_command", metavar="ACTION", required=True)
    pretrain = sub.add_parser(
        "pretrain", help="contrastive pretraining on the caption corpus (CPU, minutes)",
        description="Pretrain ovseg-tiny contrastively on captioned images of every class of the "
                    "synthetic world (seen and unseen), save an open_clip checkpoint usable as "
                    "model.clip_weights, and print zero-shot checks (random init vs pretrained).")
    pretrain.add_argument("--out", required=True,
                          help="checkpoint file to write (.pt, or .safetensors)")
    pretrain.add_argument("--seed", type=int, default=0)
    pretrain.add_argument("--steps", type=int, default=None,
                          help="training steps (default: the module's DEFAULT_STEPS)")
    pretrain.add_argument("--batch-size", type=int, default=None, help="captioned images per step")
    pretrain.add_argument("--no-check", action="store_true", help="skip the zero-shot checks")
    pretrain.add_argument("--json", default=None, help="also write the report to this JSON file")
    pretrain.set_defaults(handler=run)
    check = sub.add_parser("check", help="zero-shot checks of an ovseg-tiny checkpoint")
    check.add_argument("checkpoint", help="an ovseg-tiny open_clip checkpoint file")
    check.add_argument("--seed", type=int, default=0, help="seed of the held-out images")
    check.add_argument("--json", default=None, help="also write the figures to this JSON file")
    check.set_defaults(handler=run)


def run(args) -> int:
    if args.clip_command == "pretrain":
        return _pretrain(args)
    return _check(args)


def _pretrain(args) -> int:
    from pathlib import Path

    from ovseg_core import clip_pretrain as cp
    from ovseg_core.errors import OvsegError

    out = Path(args.out)
    if out.is_dir():
        raise OvsegError(f"--out {out} is a folder; give a checkpoint file name")
    steps = cp.DEFAULT_STEPS if args.steps is None else args.steps
    batch = cp.DEFAULT_BATCH if args.batch_size is None else args.batch_size
    print(f"pretraining {cp.MODEL_NAME} for {steps} steps of {batch} captioned images "
          f"(seed {args.seed}) -> {out}")
    report = cp.pretrain_tiny_clip(out, seed=args.seed, steps=steps, batch_size=batch,
                                   progress=True, check=not args.no_check)
    print(f"trained in {report['seconds']:.1f} s; loss {report['loss']['first']:.3f} -> "
          f"{report['loss']['final']:.3f}; wrote {out}")
    for label in ("random", "pretrained"):
        if label in report:
            print(cp.format_check(report[label], label))
    _write_json(args.json, report)
    return 0


def _check(args) -> int:
    from ovseg_core import clip_pretrain as cp

    result = cp.zero_shot_check(args.checkpoint, seed=args.seed)
    print(cp.format_check(result, args.checkpoint))
    _write_json(args.json, result)
    return 0


def _write_json(path: str | None, data: dict) -> None:
    if path is None:
        return
    import json
    from pathlib import Path

    Path(path).write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}")
