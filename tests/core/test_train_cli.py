"""The commands end to end: data synth -> train -> evaluate --json -> predict."""

import json

import numpy as np
from PIL import Image

from flows.cli import main


def test_synth_train_evaluate_predict(tmp_path, capsys):
    data, run = tmp_path / "synth", tmp_path / "run"
    assert main(["data", "synth", str(data), "--size", "64", "--train", "2", "--val", "2",
                 "--target", "2"]) == 0
    assert main(["train", "--dataset", "generic", "--root", str(data / "source"), "--out", str(run),
                 "--preset", "tiny", "--steps", "1", "--batch-size", "1", "--device", "cpu"]) == 0
    assert (run / "model.safetensors").exists() and (run / "trainer_state.pt").exists()
    report = tmp_path / "val.json"
    assert main(["evaluate", "--dataset", "generic", "--root", str(data / "target"),
                 "--checkpoint", str(run), "--json", str(report), "--save-predictions",
                 str(tmp_path / "pred"), "--device", "cpu"]) == 0
    result = json.loads(report.read_text())
    assert set(result) >= {"miou", "per_class", "seen_miou", "unseen_miou"}
    # seen from dataset.json
    assert result["unseen_miou"] is not None and len(result["per_class"]) == 9
    assert "miou" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == ["target_0000.png",
                                                                     "target_0001.png"]
    out = tmp_path / "predicted"
    assert main(["predict", str(data / "target" / "images"), "--classes", "ground, red disk, star",
                 "--checkpoint", str(run), "--out", str(out), "--device", "cpu"]) == 0
    label = np.asarray(Image.open(out / "labels" / "target_0000.png"))
    assert label.shape == (64, 64) and label.max() < 3
    assert Image.open(out / "overlays" / "target_0000.png").size[0] > 64


def test_user_errors_are_one_line(tmp_path, capsys):
    checkpoint = tmp_path / "ckpt"  # a checkpoint folder's layout, so the dataset is checked
    checkpoint.mkdir()
    for name in ("model.safetensors", "config.json"):
        (checkpoint / name).touch()
    code = main(["evaluate", "--dataset", "ade150", "--root", str(tmp_path),
                 "--checkpoint", str(checkpoint)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "layout not found" in err
