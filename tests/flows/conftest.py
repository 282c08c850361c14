"""One Prefect test harness per session, and a small synthetic run configuration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flows.config import (
    DatasetRef,
    DataSettings,
    ModelSettings,
    QualitySettings,
    RunConfig,
    SelfTrainingSettings,
    TrainSettings,
)


@pytest.fixture(scope="session")
def prefect_api():
    """A temporary Prefect server shared by the whole session; yields its API URL."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # as flows/prefect_env.py does for users: no telemetry heartbeat (offline, it only fails, and
    # its write to the harness's SQLite database raced the tests' writes: "database is locked")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield PREFECT_API_URL.value()


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A small synthetic dataset: 8 labelled source images, 4 val, 6 target images."""
    from ovseg_core.data import write_synthetic_dataset

    root = tmp_path_factory.mktemp("synth") / "data"
    return write_synthetic_dataset(root, seed=0, num_train=8, num_val=4, num_target=6)


def small_config(synthetic_root: Path, workspace: Path | str, rounds: int = 2) -> RunConfig:
    """The tiny preset on the small dataset with the small random `tiny` SAM inside the model: a
    few steps, every region gated, the model's SAM refines (random, so SAM is never trusted and
    the coarse fallback paints); no compute-matched control (tests/flows/test_control.py turns
    it on); the quality gate's class-shift check off (a 4-step model's labels shift freely
    between rounds; tests/flows/test_quality_gate.py checks it)."""
    return RunConfig(
        workspace=str(workspace),
        seed=0,
        device="cpu",
        data=DataSettings(
            source=DatasetRef(root=str(synthetic_root / "source"), split="train"),
            source_val=DatasetRef(root=str(synthetic_root / "source"), split="val"),
            target=DatasetRef(kind="images", root=str(synthetic_root / "target" / "images")),
            target_eval=DatasetRef(root=str(synthetic_root / "target")),
        ),
        model=ModelSettings(sam_variant="tiny"),
        train=TrainSettings(steps=4, retrain_steps=3, batch_size=2, crop_size=64,
                            checkpoint_every=1),
        self_training=SelfTrainingSettings(rounds=rounds, gate_threshold=0.0, refiner_sam="model",
                                           fallback="coarse",
                                           shard_size=3, batch_size=3, report_images=2,
                                           control=False),
        quality=QualitySettings(max_class_shift=None),
    )


@pytest.fixture(scope="session")
def stage_one_workspace(prefect_api, synthetic_root, tmp_path_factory) -> Path:
    """A workspace where stage one of `small_config` is done; copy it, don't write to it."""
    from flows.pipeline import self_training

    workspace = tmp_path_factory.mktemp("stage_one") / "ws"
    self_training(small_config(synthetic_root, workspace, rounds=0))
    return workspace


def pseudo_label_rows(workspace: Path | str) -> list[dict]:
    """Every column of every pseudo-label row, in a stable order."""
    from storage.query import run_sql
    from storage.workspace import Workspace

    table = run_sql(Workspace(str(workspace)),
                    "SELECT * FROM pseudo_labels ORDER BY round, image_id, region_id")
    return table.to_pylist()


def growing_target(synthetic_root: Path, stage_one_workspace: Path, tmp_path: Path,
                   **self_training):
    """A copy of the stage-one workspace whose target is a new folder holding the first 3
    synthetic target images (`self_training` settings override small_config's). Returns
    (config, workspace, first images, later images, add_later: copies the later ones in)."""
    import shutil

    from flows.config import DatasetRef

    images = sorted((synthetic_root / "target" / "images").iterdir())
    first, later = images[:3], images[3:]
    target = tmp_path / "target"
    target.mkdir()
    for path in first:
        shutil.copy(path, target / path.name)
    ws = tmp_path / "ws"
    shutil.copytree(stage_one_workspace, ws)
    cfg = small_config(synthetic_root, ws)
    data = cfg.data.model_copy(update={"target": DatasetRef(kind="images", root=str(target))})
    st = cfg.self_training.model_copy(update=self_training)
    cfg = cfg.model_copy(update={"data": data, "self_training": st})

    def add_later() -> None:
        for path in later:
            shutil.copy(path, target / path.name)

    return cfg, ws, first, later, add_later
