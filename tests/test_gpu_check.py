"""The GPU check's dry run (benchmarks/gpu.sh --dry-run, tiny sizes on the CPU) writes every
figure the GPU run writes, each a positive number."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def _positive(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


@pytest.mark.slow
def test_dry_run_writes_every_figure(tmp_path):
    out = tmp_path / "results" / "gpu_check.json"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([str(ROOT / "benchmarks" / "gpu.sh"), "--dry-run", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert set(result) == {"machine", "forward", "sam_decode", "memory", "labelling_round",
                           "seconds"}
    assert result["machine"]["dry_run"] is True and "random init" in result["machine"]["weights"]
    assert result["machine"]["device"] and "code" in result["machine"]
    assert [f["preset"] for f in result["forward"]] == ["tiny"]
    for row in result["forward"]:
        for key in ("images_per_s", "gflop_per_image", "achieved_tflops"):
            assert _positive(row[key]), (key, row[key])
        assert row["peak_fraction"] is None  # no GPU peak on the CPU
    sam = result["sam_decode"]
    for key in ("batched_ms", "one_by_one_ms", "speedup"):
        assert _positive(sam[key]), key
    assert set(result["memory"]) == {"train_step", "inference_labels", "inference_probabilities"}
    for case in result["memory"].values():
        assert _positive(case["peak_gib"]) and _positive(case["estimate_gib"])
    lab = result["labelling_round"]
    assert lab["images"] == 2 and _positive(lab["seconds"]) and _positive(lab["regions"])
    assert "wrote" in done.stdout and "forward tiny" in done.stdout
