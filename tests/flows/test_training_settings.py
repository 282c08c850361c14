"""The one translation of training settings (flows/training.py), as the rounds and `ovseg train`
use it."""

from __future__ import annotations

import pytest

from flows.cli import build_parser
from flows.commands.train import train_config as cli_train_config
from flows.config import ModelSettings, RunConfig, TrainSettings
from flows.steps import train_config as round_train_config
from flows.training import train_config
from ovseg_core.errors import OvsegError
from ovseg_core.train import PRESET_DEFAULTS


def test_unset_settings_take_the_preset_defaults_and_retraining_a_third_of_the_steps():
    stage_one = train_config(TrainSettings(), "tiny", 96, seed=3)
    tiny = PRESET_DEFAULTS["tiny"]
    assert (stage_one.steps, stage_one.batch_size, stage_one.lr) == (
        tiny["steps"], tiny["batch_size"], tiny["lr"])
    assert (stage_one.crop_size, stage_one.seed) == (96, 3)
    assert train_config(TrainSettings(), "tiny", 96, 0, retrain=True).steps == tiny["steps"] // 3
    given = TrainSettings(steps=30, retrain_steps=7, batch_size=6, crop_size=64, lr=0.5,
                          alpha=0.25, num_workers=1, checkpoint_every=5)
    retrain = train_config(given, "paper", 768, 1, retrain=True)
    assert (retrain.steps, retrain.batch_size, retrain.crop_size, retrain.lr, retrain.alpha,
            retrain.num_workers, retrain.checkpoint_every) == (7, 6, 64, 0.5, 0.25, 1, 5)
    assert train_config(given, "paper", 768, 1).steps == 30


def test_ovseg_train_flags_and_a_run_config_give_the_same_training(tmp_path):
    args = build_parser().parse_args(
        ["train", "--dataset", "generic", "--root", "r", "--out", "o", "--steps", "12",
         "--batch-size", "2", "--lr", "0.01", "--workers", "1", "--seed", "4"])
    run = RunConfig(workspace=str(tmp_path), seed=4, model=ModelSettings(pretrain_clip=False),
                    train=TrainSettings(steps=12, batch_size=2, lr=0.01, num_workers=1))
    assert cli_train_config(args, 128) == round_train_config(run, retrain=False, seed=4)
    assert cli_train_config(args, 128).crop_size == 128  # the tiny preset's input size


@pytest.mark.parametrize(("flag", "value"), [("--steps", "0"), ("--workers", "-1"),
                                             ("--crop-size", "8")])
def test_an_out_of_range_flag_is_a_user_error_naming_it(flag, value):
    args = build_parser().parse_args(
        ["train", "--dataset", "generic", "--root", "r", "--out", "o", flag, value])
    with pytest.raises(OvsegError, match=f"^{flag}: "):  # the CLI prints it on one line
        cli_train_config(args, 128)


def test_model_input_size_sets_clip_input_and_the_training_crop(tmp_path):
    from flows.steps import model_config
    run = RunConfig(workspace=str(tmp_path), model=ModelSettings(input_size=256))
    assert model_config(run).input_size == 256
    assert round_train_config(run, retrain=False, seed=0).crop_size == 256
    assert model_config(RunConfig(workspace=str(tmp_path))).input_size == 128  # tiny's own
    with pytest.raises(ValueError):
        ModelSettings(input_size=200)  # not a multiple of 32
