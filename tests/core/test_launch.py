"""`ovseg_core.launch`: what cannot run is refused before any process starts, and a worker's
exception comes back as one OvsegError naming the rank and the cause. (The launched training
itself is compared with one process in tests/flows/test_retrain_processes.py.)"""

from __future__ import annotations

import os

import pytest

from ovseg_core.checkpoint import save_model
from ovseg_core.config import preset
from ovseg_core.errors import OvsegError
from ovseg_core.launch import TrainJob, check_launch, launch
from ovseg_core.modeling.build import build_model
from ovseg_core.train import preset_train_config


def no_samples():
    raise OvsegError(f"no samples on rank {os.environ['RANK']}")


def job(init: str = "unused", batch_size: int = 4, device: str | None = "cpu") -> TrainJob:
    cfg = preset_train_config("tiny", steps=2, batch_size=batch_size, crop_size=64)
    return TrainJob(init, no_samples, (), ["a", "b"], [True, False], cfg, "unused", device)


@pytest.mark.parametrize(("kwargs", "processes", "message"), [
    ({"batch_size": 3}, 2, "batch size 3 .* multiple of the 2 training processes"),
    ({}, 0, "must be >= 1"),
    ({"device": "cuda:1"}, 2, "set the device to cuda, not cuda:1"),
])
def test_what_cannot_run_is_refused_before_launching(kwargs, processes, message):
    with pytest.raises(OvsegError, match=message):
        check_launch(job(**kwargs), processes)


@pytest.mark.slow
def test_a_worker_exception_names_its_rank_and_cause(tmp_path):
    save_model(build_model(preset("tiny", input_size=64)), tmp_path / "init")
    with pytest.raises(OvsegError) as raised:
        launch(job(str(tmp_path / "init")), 2)
    message = str(raised.value)
    assert message.startswith("training over 2 processes failed")
    assert "OvsegError: no samples on rank" in message
