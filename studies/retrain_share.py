"""Does a class's share of the retraining labels decide what a round unlearns? (an intervention)

A round can unlearn a class an earlier round had, when its pseudo-labels paint that class far
less and the ground far more. This retrains a finished round again from its parent checkpoint,
with the round's own settings and seed, twice: as stored (which reproduces the round's
figures), and with a share of one class's labelled pixels set to ignore (in the pseudo-labels
and the mixed-in source alike; a fixed random subset per image), then prints held-out mIoU
and per-class IoU of both. Nothing in the workspace changes (checkpoints go to a temporary folder).

    uv run python studies/retrain_share.py ovseg-workspace --round 2 --thin ground --keep 0.35
    uv run python studies/retrain_share.py ovseg-workspace --round 2 --keep --balance 0.5 1
    uv run python studies/retrain_share.py ovseg-workspace --round 2 --keep --memory

`--memory`: also retrain with the previous round's pseudo-labels where this round's paint
nothing (an image's label as stored, its ignored pixels filled from the round before; images
only the previous round labelled come back), mixed with the source as the round was.
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np

from ovseg_core.constants import IGNORE_INDEX


class ThinnedClasses:
    """`base` samples with a fixed random (1 - keep[c]) share of each class c's pixels ignored.

    keep: (N,) shares in [0, 1], one per class id.
    """

    def __init__(self, base, keep: np.ndarray):
        self.base, self.keep = base, np.append(np.asarray(keep, dtype=np.float64), 1.0)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, label = self.base[index]
        label = np.array(label, copy=True)
        rng = np.random.default_rng(index)
        classes = np.where(label == IGNORE_INDEX, len(self.keep) - 1, label)
        label[rng.random(label.shape) > self.keep[classes]] = IGNORE_INDEX
        return image, label


class WithPreviousRound:
    """Pseudo-label samples of a round whose ignored pixels take the previous round's labels.

    current, previous: `PseudoLabelSamples` of rounds r and r - 1 of one target (same images,
    same sizes); one sample per image either labels, sorted by image id.
    """

    def __init__(self, current, previous):
        self.current, self.previous = current, previous
        self.image_ids = sorted(set(current.image_ids) | set(previous.image_ids))

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image_id = self.image_ids[index]
        now, before = (s.image_ids.index(image_id) if image_id in s.image_ids else None
                       for s in (self.current, self.previous))
        if now is None:
            return self.previous[before]
        image, label = self.current[now]
        if before is not None:
            label = np.array(label, copy=True)
            unlabelled = label == IGNORE_INDEX
            label[unlabelled] = self.previous.label_map(before)[unlabelled]
        return image, label


def with_previous_round(cfg, round: int):
    """`training.retrain_samples` of `round`, its pseudo-labels under `WithPreviousRound`."""
    from flows.plan import data_plan
    from flows.training import with_source
    from storage.samples import PseudoLabelSamples
    from storage.workspace import Workspace

    plan, where = data_plan(cfg), cfg.self_training.selection
    rounds = [PseudoLabelSamples(Workspace(cfg.workspace), r, plan.read_target, where=where)
              for r in (round, round - 1)]
    return with_source(plan, cfg.self_training, cfg.seed + round, WithPreviousRound(*rounds))


def thin_one(names: list[str], name: str, keep: float) -> np.ndarray:
    """(N,) keep shares: `keep` for class `name`, 1 elsewhere."""
    shares = np.ones(len(names))
    shares[names.index(name)] = keep
    return shares


def balanced(counts: np.ndarray, power: float) -> np.ndarray:
    """(N,) keep shares min(1, (median / count) ** power): power 1 thins every class painted more
    than the median painted class down to the median's pixel count, 0.5 halfway in log scale
    (classes with no painted pixel do not count towards the median)."""
    median = np.median(counts[counts > 0])
    return np.minimum(1.0, median / np.maximum(counts, 1)) ** power


def painted_pixels(cfg, round: int, names: list[str]) -> np.ndarray:
    """(N,) pixels each class's pseudo-labels paint in the round (the target part of
    retraining)."""
    from flows.plan import data_plan
    from storage.samples import PseudoLabelSamples
    from storage.workspace import Workspace

    samples = PseudoLabelSamples(Workspace(cfg.workspace), round, data_plan(cfg).read_target,
                                 where=cfg.self_training.selection)
    counts = np.zeros(len(names), dtype=np.int64)
    for i in range(len(samples)):
        label = samples.label_map(i)
        counts += np.bincount(label[label != IGNORE_INDEX].ravel(), minlength=len(names))
    return counts


def retrain_and_score(cfg, round: int, samples, seed_offset: int = 0) -> dict:
    """Retrain `round` from its parent checkpoint on `samples`, with the round's seed +
    `seed_offset` (0: as the round did); held-out evaluation dict."""
    from flows import steps
    from flows.context import TaskContext
    from ovseg_core.inference import evaluate
    from ovseg_core.train import train

    ctx = TaskContext.open(cfg)
    plan, runtime = ctx.plan, ctx.runtime
    parent = steps.parent_ref(ctx.store, round)
    model = ctx.load_checkpoint(parent.round, parent.checkpoint_sha256, cached=False)
    settings = steps.train_config(cfg, retrain=True, seed=cfg.seed + round + seed_offset)
    with tempfile.TemporaryDirectory() as out:
        train(model, samples, plan.target_classes, plan.target_seen, settings, out, runtime)
    model.eval()
    names = plan.target_eval.class_names
    return evaluate(model, plan.target_eval, runtime, progress=False, seen=plan.seen(names))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace")
    parser.add_argument("--round", type=int, default=2)
    parser.add_argument("--thin", default="ground", help="the class whose pixels are thinned")
    parser.add_argument("--keep", type=float, nargs="*", default=[0.35],
                        help="shares of that class's pixels kept (one retraining each)")
    parser.add_argument("--balance", type=float, nargs="*", default=[], metavar="POWER",
                        help="also retrain with every class c thinned to a share "
                             "min(1, median painted count / c's count) ** POWER (one each)")
    parser.add_argument("--reseed", type=int, nargs="*", default=[], metavar="OFFSET",
                        help="also retrain as stored with the round's seed + OFFSET (one each): "
                             "how far retraining's own randomness moves the figures")
    parser.add_argument("--memory", action="store_true",
                        help="also retrain with the previous round's labels where this round's "
                             "paint nothing")
    args = parser.parse_args()
    from pl_confusion import round_config

    from flows import training
    from flows.plan import data_plan

    cfg = round_config(args.workspace, args.round)
    names = data_plan(cfg).target_classes
    if args.thin not in names:
        raise SystemExit(f"--thin {args.thin}: not a class of the target ({', '.join(names)})")
    counts = painted_pixels(cfg, args.round, names)
    print(f"round {args.round} pseudo-labels paint: "
          + ", ".join(f"{n} {c}" for n, c in zip(names, counts, strict=True)))
    samples = training.retrain_samples_of(cfg, args.round)
    runs = [("as stored", samples)] + [
        (f"{args.thin} kept {keep:g}", ThinnedClasses(samples, thin_one(names, args.thin, keep)))
        for keep in args.keep]
    for power in args.balance:
        keep = balanced(counts, power)
        print(f"balanced ** {power:g} keeps: " + ", ".join(
            f"{n} {k:.2f}" for n, k in zip(names, keep, strict=True) if k < 1))
        runs.append((f"balanced ** {power:g}", ThinnedClasses(samples, keep)))
    if args.memory:
        runs.append((f"+ round {args.round - 1}'s labels", with_previous_round(cfg, args.round)))
    runs = [(label, data, 0) for label, data in runs]
    runs += [(f"as stored, seed +{k}", samples, k) for k in args.reseed]
    for label, data, offset in runs:
        r = retrain_and_score(cfg, args.round, data, offset)
        per_class = ", ".join(f"{n} {v:.1f}" for n, v in r["per_class"].items() if v is not None)
        print(f"{label:>18}: mIoU {r['miou']:.1f} seen {r['seen_miou']:.1f} "
              f"unseen {r['unseen_miou']:.1f} | {per_class}", flush=True)


if __name__ == "__main__":
    main()
