"""A short stage-one training of the tiny preset on the synthetic
source learns it clearly better than chance (slow: minutes on 2 CPU cores)."""

import json
import time

import numpy as np
import pytest

from flows.cli import main
from ovseg_core.data import open_dataset
from ovseg_core.metrics import ConfusionMatrix


def baselines(val) -> tuple[float, float]:
    """mIoU (percent) of uniform random predictions and of predicting the majority class."""
    rng = np.random.default_rng(0)
    uniform, majority = ConfusionMatrix(len(val.class_names)), ConfusionMatrix(len(val.class_names))
    for i in range(len(val)):
        label = val[i][1]
        uniform.update(rng.integers(0, len(val.class_names), label.shape), label)
        majority.update(np.zeros_like(label), label)
    return uniform.compute()["miou"], majority.compute()["miou"]


@pytest.mark.slow
def test_stage_one_tiny_beats_chance_on_synthetic_val(tmp_path):
    data, run, report = tmp_path / "synth", tmp_path / "run", tmp_path / "val.json"
    assert main(["data", "synth", str(data)]) == 0
    start = time.perf_counter()
    assert main(["train", "--dataset", "generic", "--root", str(data / "source"), "--out", str(run),
                 "--preset", "tiny", "--device", "cpu"]) == 0
    train_s = time.perf_counter() - start
    assert main(["evaluate", "--dataset", "generic", "--root", str(data / "source"),
                 "--split", "val",
                 "--checkpoint", str(run), "--json", str(report), "--device", "cpu"]) == 0
    miou = json.loads(report.read_text())["miou"]
    uniform, majority = baselines(open_dataset("generic", data / "source", "val"))
    print(f"\nstage one (tiny, CPU): val mIoU {miou:.1f}% vs chance {uniform:.1f}% "
          f"(all-ground {majority:.1f}%), training {train_s:.0f} s")
    assert miou > max(3 * uniform, majority + 5)
