"""Progress for a log file or CI (not a terminal): a few plain lines per step, never
carriage-return updates; a terminal gets a live bar. Every step ends with one line."""

import io

import torch

from ovseg_core.config import preset
from ovseg_core.data import open_dataset, write_synthetic_dataset
from ovseg_core.device import pick_runtime
from ovseg_core.modeling.build import build_model
from ovseg_core.progress import Progress, step_name, track
from ovseg_core.train import TrainConfig, train


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_not_a_terminal_gives_a_line_per_ten_percent_and_one_at_the_end():
    log = io.StringIO()
    with Progress(1000, "round 1: label", "images", stream=log, interval=0) as bar:
        for _ in range(1000):
            bar.update(1)
            bar.set_postfix(loss="0.5")
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert len(lines) == 10  # 10%, 20%, ..., 90%, then the closing line
    assert lines[0].startswith("round 1: label  10% (100/1000 images")
    assert lines[-1].startswith("round 1: label done: 1000/1000 images in ")
    assert lines[-1].endswith(", loss 0.5")


def test_a_short_step_shows_only_its_closing_line():
    log = io.StringIO()
    assert list(track(range(50), "evaluate", unit="images", stream=log)) == list(range(50))
    assert log.getvalue().splitlines() == [log.getvalue().splitlines()[-1]]
    assert log.getvalue().startswith("evaluate done: 50/50 images in ")


def test_a_terminal_gets_a_bar_and_the_closing_line():
    term = Terminal()
    with Progress(200, "stage one: train", "steps", stream=term) as bar:
        bar.update(200)
    text = term.getvalue()
    assert "\r" in text  # tqdm's live bar
    assert text.rstrip("\n").splitlines()[-1].startswith("stage one: train done: 200/200 steps")


def test_disabled_progress_writes_nothing():
    log = io.StringIO()
    with Progress(10, "x", stream=log, disable=True) as bar:
        bar.update(10)
    assert log.getvalue() == ""


def test_step_names():
    assert step_name(0, "train") == "stage one: train"
    assert step_name(2, "retrain") == "round 2: retrain"


def test_training_to_a_log_file_writes_a_few_lines(tmp_path, capsys):
    """A real training step with stderr captured (not a terminal): at most a line per 10% and
    the closing line, no carriage returns (tqdm wrote one update per step)."""
    out = write_synthetic_dataset(tmp_path / "synth", seed=0, image_size=64, num_train=4,
                                  num_val=1, num_target=1)
    source = open_dataset("generic", out / "source", split="train")
    torch.manual_seed(0)
    model = build_model(preset("tiny", input_size=64))
    cfg = TrainConfig(steps=30, batch_size=1, lr=1e-3, warmup_steps=2, crop_size=64, seed=0,
                      num_workers=0, log_every=10, checkpoint_every=30)
    train(model, source, source.class_names, [True] * len(source.class_names), cfg,
          tmp_path / "run", pick_runtime("cpu"), desc=step_name(0, "train"))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("stage one: train")]
    assert "\r" not in err
    assert 1 <= len(lines) <= 10
    assert lines[-1].startswith("stage one: train done: 30/30 steps in ")
    assert " loss " in lines[-1]
