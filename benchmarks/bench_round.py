"""Where a self-training round's time goes: model, SAM, storage, data, orchestration.

Makes a synthetic dataset and a short stage one (not timed), then runs round 1 through the
real Prefect flow in this process and prints the wall time of each phase
(`ovseg_core.profiling`) and the rest, which is orchestration (Prefect tasks and flow runs,
glue). The target: orchestration + storage under 5% of a round once model work is realistic
(paper preset on a GPU); with the tiny preset on a CPU the model work is small, so the
fraction is an upper bound. `bench_scale.py` runs the same round over growing target sizes.

    python benchmarks/bench_round.py --images 16 --refiner vit_t
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def bench_config(workspace: str | Path, *, preset: str = "tiny", images: int = 16,
                 refiner: str = "vit_t", shard_size: int = 8, gate: float | None = None,
                 fallback: str = "ignore", stage_steps: int | None = None,
                 retrain_steps: int = 50, device: str | None = None,
                 clip_verify: bool | None = None):
    """The benchmarks' RunConfig: the synthetic world with `images` target images, one round.

    gate None = the preset's default; stage_steps None = the preset's stage-one steps;
    clip_verify None = the default (on: the world's pretrained tiny CLIP has weights).
    """
    from flows.config import RunConfig

    return RunConfig.model_validate({
        "workspace": str(workspace), "device": device,
        "data": {"synthetic": {"train": 16, "val": 4, "target": images}},
        "model": {"preset": preset},
        "train": {"steps": stage_steps, "retrain_steps": retrain_steps},
        "self_training": {"rounds": 1, "refiner_sam": refiner, "gate_threshold": gate,
                          "fallback": fallback, "shard_size": shard_size, "report_images": 2,
                          "clip_verify": clip_verify},
    })


def timed_round(cfg, round: int = 1) -> tuple[dict[str, float], float]:
    """Run round `round` through the real Prefect flow with phase timing on: (phase seconds,
    wall seconds). The caller configured Prefect (`flows.prefect_env.configure_prefect`)."""
    from flows.pipeline import round_flow
    from ovseg_core.profiling import enable, phase_seconds, reset_phases

    enable()
    reset_phases()
    start = time.perf_counter()
    round_flow(cfg)(cfg, round)
    return phase_seconds(), time.perf_counter() - start


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
    from flows.pipeline import self_training

    root = Path(args.workdir or tempfile.mkdtemp(prefix="ovseg-bench-round-"))
    cfg = bench_config(root / "ws", preset=args.preset, images=args.images,
                       refiner=args.refiner, shard_size=args.shard_size, device=args.device)
    self_training(cfg, rounds=0)  # stage one, not timed
    phases, wall = timed_round(cfg)
    report(phases, wall, args)


def report(phases: dict[str, float], wall: float, args) -> None:
    rest = wall - sum(phases.values())
    rows = sorted(phases.items(), key=lambda kv: -kv[1]) + [("orchestration (rest)", rest)]
    print(f"\nround 1: {args.images} images, preset {args.preset}, refiner {args.refiner}, "
          f"wall {wall:.1f} s")
    for name, seconds in rows:
        print(f"  {name:22s} {seconds:8.2f} s  {100 * seconds / wall:5.1f}%")
    overhead = rest + phases.get("storage", 0.0)
    print(f"  orchestration + storage: {100 * overhead / wall:.1f}% of the round")
    from storage.results import figure, record

    record(f"round_{args.preset}_{args.refiner}", [
        figure("orchestration + storage", round(100 * overhead / wall, 1), "% of the round",
               "< 5 once model work is realistic"),
        figure("round wall", round(wall, 1), "s"),
        *[figure(name, round(seconds, 2), "s") for name, seconds in rows]],
        title=f"Where round 1's time goes ({args.images} images, {args.preset} preset, "
              f"refiner {args.refiner})")


if __name__ == "__main__":
    main()
