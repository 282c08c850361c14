"""The one translation of the run's training settings into `ovseg_core.train.TrainConfig`.

Used by the rounds (`flows.steps`: stage one and every retraining) and by `ovseg train`, whose
flags fill the same `TrainSettings`: a setting left unset takes the preset's default
(`ovseg_core.train.PRESET_DEFAULTS`), the crop the model's input size.
"""

from __future__ import annotations

from flows.config import TrainSettings
from ovseg_core.train import PRESET_DEFAULTS, TrainConfig, preset_train_config

SETTINGS = ("batch_size", "lr", "alpha", "num_workers", "checkpoint_every")
"""TrainSettings passed to TrainConfig under the same name when set (steps and crop_size are
derived)."""


def train_config(settings: TrainSettings, preset: str, input_size: int, seed: int,
                 retrain: bool = False) -> TrainConfig:
    """Stage-one (or, with `retrain`, retraining) settings: the preset's defaults, then the
    ones given. Retraining runs `retrain_steps`, by default a third of the stage-one steps."""
    steps = settings.steps or PRESET_DEFAULTS[preset]["steps"]
    if retrain:
        steps = settings.retrain_steps or max(1, steps // 3)
    given = {name: getattr(settings, name) for name in SETTINGS}
    given |= {"steps": steps, "crop_size": settings.crop_size or input_size, "seed": seed}
    return preset_train_config(preset, **{k: v for k, v in given.items() if v is not None})
