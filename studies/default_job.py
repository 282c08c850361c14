"""The main job as a user runs it: `uv run ovseg run` on a new workspace, timed, its peak memory
and its per-round figures read back from the store's lineage, recorded as the `default_job`
results unit (docs/results.md).

    uv run python studies/default_job.py [--workspace ovseg-studies/default_job]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROUND_KEYS = (("target mIoU", "target_miou"), ("seen mIoU", "target_seen_miou"),
              ("unseen mIoU", "target_unseen_miou"), ("PL refined mIoU", "pl_refined_miou"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", default="ovseg-studies/default_job")
    args = parser.parse_args()
    workspace = Path(args.workspace)
    if workspace.exists():
        shutil.rmtree(workspace)
    command = ["uv", "run", "ovseg", "run", "--workspace", str(workspace)]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - start
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB -> GiB
    print(f"recorded {record_job(workspace, wall, peak_gib)}")


def record_job(workspace: Path, wall_s: float, peak_gib: float) -> Path:
    """Record the job's wall time, peak RSS and per-round figures from its lineage."""
    from storage.results import figure, record
    from storage.terms import COMPLETED, CONTROL, SELF_TRAINING_ROUND, STAGE_ONE
    from storage.workspace import Workspace

    lineage = [r for r in Workspace(str(workspace)).lineage() if r.status == COMPLETED]
    records = {r.round: r.metrics for r in lineage if r.stage in (STAGE_ONE, SELF_TRAINING_ROUND)}
    controls = {r.round: r.metrics for r in lineage if r.stage == CONTROL}
    rounds = sorted(records)
    rows = [figure("wall time (includes the environment's set-up when it is new)",
                   round(wall_s, 1), "s", "< 600"),
            figure("peak RSS of the largest process", round(peak_gib, 2), "GiB")]
    for name, key in ROUND_KEYS:
        values = [records[r].get(key) for r in rounds]
        shown = " / ".join("-" if v is None else f"{v:.1f}" for v in values)
        rows.append(figure(f"{name}: " + " / ".join(
            "stage one" if r == 0 else f"round {r}" for r in rounds), shown, "%"))
    for name, key in ROUND_KEYS[1:3]:
        shown = " / ".join(f"{controls[r][key]:.1f}" for r in sorted(controls))
        rows.append(figure(f"control's {name}: " + " / ".join(
            f"round {r}" for r in sorted(controls)), shown, "%"))
    return record("default_job", rows, kind="benchmark",
                  command="uv run python studies/default_job.py",
                  title="The main job (`uv run ovseg run`: built-in world, tiny preset, CPU)")


if __name__ == "__main__":
    sys.exit(main())
