"""User mistakes on the command line end in one line on stderr and exit 2, not a traceback."""

import subprocess
import sys

import pytest

from flows.cli import main


def test_malformed_yaml_is_an_invalid_configuration(tmp_path, capsys):
    bad = tmp_path / "run.yaml"
    bad.write_text("self_training: {rounds: 2\nmodel: [")
    assert main(["run", "--config", str(bad), "--workspace", str(tmp_path / "ws")]) == 2
    assert "invalid configuration" in capsys.readouterr().err


def test_redo_of_a_round_that_does_not_exist(tmp_path, capsys):
    assert main(["run", "--workspace", str(tmp_path / "ws"), "--redo-round", "7"]) == 2
    assert "--redo-round 7: no such self-training round" in capsys.readouterr().err


def test_sql_into_a_closed_pipe_is_quiet(tmp_path):
    query = "SELECT * FROM range(100000)"
    cmd = (f"{sys.executable} -m flows.cli sql '{query}' --workspace {tmp_path} --format csv "
           "| head -1")
    out = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "range" and "Traceback" not in out.stderr


def test_bad_data_and_paths_fail_before_prefect_starts(tmp_path, capsys):
    run = tmp_path / "run.yaml"
    run.write_text(f"data: {{target: {{kind: images, root: {tmp_path}}}}}\n")
    assert main(["run", "--config", str(run), "--workspace", str(tmp_path / "ws")]) == 2
    out, err = capsys.readouterr()
    assert "data.target is set but data.source is not" in err and "starting Prefect" not in out
    run.write_text("model: {clip_weights: /nowhere/clip.bin}\n")
    assert main(["run", "--config", str(run), "--workspace", str(tmp_path / "ws")]) == 2
    out, err = capsys.readouterr()
    assert "model.clip_weights = /nowhere/clip.bin does not exist" in err
    assert "starting Prefect" not in out


def test_empty_class_list_for_predict(tmp_path, capsys):
    args = ["predict", str(tmp_path), "--out", str(tmp_path / "out"), "--classes"]
    assert main([*args, ""]) == 2  # was a TypeError: '' fell through to --classes-file
    assert "--classes is empty" in capsys.readouterr().err
    assert main([*args, " , "]) == 2
    assert "--classes is empty" in capsys.readouterr().err


@pytest.mark.parametrize(("device", "message"), [
    ("gpu", "device 'gpu' is not a torch device"),
    ("cuda:99", "device cuda:99: "),  # no CUDA here, or fewer than 100 devices anywhere
])
def test_a_device_this_machine_lacks_fails_before_prefect_starts(tmp_path, capsys, device,
                                                                  message):
    assert main(["run", "--device", device, "--workspace", str(tmp_path / "ws")]) == 2
    out, err = capsys.readouterr()  # was a RuntimeError traceback from inside the flow
    assert message in err and "starting Prefect" not in out
