"""Where a round's orchestration goes: cProfile of one round through the real Prefect flow.

Reuses a finished stage one (a workspace from `bench_scale.py`: `<workdir>/stage/ws`), adds
`--images` generated target images, runs round 1 with the profiling phases on under cProfile
and prints the phases, the rest (what no phase covers) and the profile's entries for Prefect's
task engine and ovseg's flows and labelling, by cumulative time (cProfile inflates them).

    uv run python benchmarks/profile_round.py --stage /tmp/scale/w/stage/ws --images 512
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import tempfile
from pathlib import Path

from bench_round import bench_config, timed_round


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", required=True, help="a workspace holding a finished stage one")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument("--top", type=int, default=30, help="profile entries to print")
    parser.add_argument("--dump", default=None, help="also write the profile here (pstats)")
    args = parser.parse_args()
    from flows.prefect_env import configure_prefect

    configure_prefect()
    from prefect import flow

    from flows.plan import ensure_synthetic

    ws = Path(tempfile.mkdtemp(prefix="ovseg-profile-round-")) / "ws"
    shutil.copytree(args.stage, ws)
    cfg = bench_config(ws, images=args.images, refiner="tiny", shard_size=args.shard_size,
                       gate=0.0, fallback="coarse")
    ensure_synthetic(cfg)
    flow(name="profile-round-warm-up")(lambda: None)()  # the temporary server, not profiled
    profile = cProfile.Profile()
    profile.enable()
    phases, wall = timed_round(cfg)
    profile.disable()
    rest = wall - sum(phases.values())
    print(f"round 1, {args.images} images, shards of {args.shard_size}: wall {wall:.1f} s, "
          f"outside every phase {rest:.1f} s")
    for name, seconds in sorted(phases.items(), key=lambda kv: -kv[1]):
        print(f"  {name:12s} {seconds:7.2f} s")
    if args.dump:
        profile.dump_stats(args.dump)
    stats = pstats.Stats(profile).sort_stats("cumulative")
    stats.print_stats(r"task_engine.py.*\(start\)|flows/|ovseg_core/labeling", args.top)


if __name__ == "__main__":
    main()
