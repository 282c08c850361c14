"""Where a self-training round's time goes: model, SAM, storage, data, orchestration.

Makes a synthetic dataset and a short stage one (not timed), then runs round 1 through the
real Prefect flow in this process and prints the wall time of each phase
(`ovseg_core.profiling`) and the rest, which is orchestration (Prefect tasks and flow runs,
glue). The target: orchestration + storage under 5% of a round once model work is realistic
(paper preset on a GPU); with the tiny preset on a CPU the model work is small, so the
fraction is an upper bound.

    python benchmarks/bench_round.py --images 16 --refiner vit_t
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", choices=("tiny", "mobile", "paper"))
    parser.add_argument("--images", type=int, default=16, help="target images in the round")
    parser.add_argument("--refiner", default="vit_t", help="refiner SAM: vit_t, model, ...")
    parser.add_argument("--shard-size", type=int, default=8)
    parser.add_argument("--device", default=None)
    parser.add_argument("--workdir", default=None, help="default: a temporary folder")
    args = parser.parse_args()

    from flows.prefect_env import configure_prefect

    configure_prefect()
    from flows.config import RunConfig
    from flows.pipeline import round_flow, self_training
    from ovseg_core.profiling import enable, phase_seconds, reset_phases

    enable()

    root = Path(args.workdir or tempfile.mkdtemp(prefix="ovseg-bench-round-"))
    cfg = RunConfig.model_validate({
        "workspace": str(root / "ws"), "device": args.device,
        "data": {"synthetic": {"train": 16, "val": 4, "target": args.images}},
        "model": {"preset": args.preset},
        "train": {"retrain_steps": 50},
        "self_training": {"rounds": 1, "refiner_sam": args.refiner,
                          "shard_size": args.shard_size, "report_images": 2},
    })
    self_training(cfg, rounds=0)  # stage one, not timed
    reset_phases()
    start = time.perf_counter()
    round_flow(cfg)(cfg, 1)
    wall = time.perf_counter() - start
    report(phase_seconds(), wall, args)


def report(phases: dict[str, float], wall: float, args) -> None:
    rest = wall - sum(phases.values())
    rows = sorted(phases.items(), key=lambda kv: -kv[1]) + [("orchestration (rest)", rest)]
    print(f"\nround 1: {args.images} images, preset {args.preset}, refiner {args.refiner}, "
          f"wall {wall:.1f} s")
    for name, seconds in rows:
        print(f"  {name:22s} {seconds:8.2f} s  {100 * seconds / wall:5.1f}%")
    overhead = rest + phases.get("storage", 0.0)
    print(f"  orchestration + storage: {100 * overhead / wall:.1f}% of the round")


if __name__ == "__main__":
    main()
