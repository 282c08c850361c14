"""`ovseg predict` and `ovseg evaluate`: path mistakes are one line before torch loads, a
checkpoint's model.safetensors stands for its folder, and unreadable images are reported by
the command itself (no Python warning line)."""

import shutil
import subprocess
import sys
import textwrap

import pytest

from flows.cli import main


def run_without_torch(argv: list[str]) -> tuple[int, str, bool]:
    """(exit code, stderr, whether torch was imported) of `ovseg ARGV` in a fresh process."""
    code = textwrap.dedent(f"""
        import sys
        from flows.cli import main
        rc = main({argv!r})
        print("torch loaded:", "torch" in sys.modules)
        sys.exit(rc)""")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    return out.returncode, out.stderr, "torch loaded: True" in out.stdout


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from ovseg_core.checkpoint import save_model
    from ovseg_core.config import preset
    from ovseg_core.modeling.build import build_model

    folder = tmp_path_factory.mktemp("ckpt") / "stage1"
    save_model(build_model(preset("tiny")), folder)
    return folder


@pytest.fixture
def unreadable(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.jpg").write_text("not a picture")
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return folder


def test_predict_on_unreadable_files_is_one_line_before_torch(unreadable, tmp_path):
    rc, err, torch_loaded = run_without_torch(
        ["predict", str(unreadable), "--classes", "cat, dog", "--out", str(tmp_path / "o")])
    assert rc == 2 and err.count("\n") == 1 and "Warning" not in err, err
    assert err.startswith(f"ovseg predict: error: no readable images in {unreadable} "
                          "(skipped 2 files that are not readable images")
    assert "a.jpg (UnidentifiedImageError" in err and not torch_loaded


@pytest.mark.parametrize("command", [
    ["predict", "IMAGES", "--classes", "cat", "--out", "OUT"],
    ["evaluate", "--dataset", "generic", "--root", "IMAGES"]])
def test_a_checkpoint_path_mistake_is_one_line_before_torch(tmp_path, command):
    argv = [a.replace("IMAGES", str(tmp_path)).replace("OUT", str(tmp_path / "o"))
            for a in command]
    wrong = tmp_path / "stage1" / "model.safetensors"
    rc, err, torch_loaded = run_without_torch([*argv, "--checkpoint", str(wrong)])
    assert rc == 2 and err.count("\n") == 1 and not torch_loaded, err
    assert f"--checkpoint {wrong}: not found; give the checkpoint folder" in err


def test_evaluate_root_mistake_is_one_line_before_torch(tmp_path):
    rc, err, torch_loaded = run_without_torch(
        ["evaluate", "--dataset", "generic", "--root", str(tmp_path / "nowhere"),
         "--checkpoint", str(tmp_path)])
    assert rc == 2 and f"--root {tmp_path / 'nowhere'}: no such dataset folder" in err
    assert not torch_loaded


def test_predict_takes_model_safetensors_and_reports_skipped_files(
        tiny_checkpoint, synthetic_root, unreadable, tmp_path, capsys, recwarn):
    images = tmp_path / "mixed"
    shutil.copytree(unreadable, images)
    shutil.copy(synthetic_root / "target" / "images" / "target_0000.png", images)
    assert main(["predict", str(images), "--classes", "ground, red disk", "--out",
                 str(tmp_path / "out"), "--checkpoint",
                 str(tiny_checkpoint / "model.safetensors")]) == 0
    out, err = capsys.readouterr()
    assert "wrote 1 label maps" in out
    assert "skipped a.jpg: UnidentifiedImageError" in err and "skipped b.png" in err
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)
                and "unreadable" in str(w.message)]
    assert (tmp_path / "out" / "overlays" / "target_0000.png").is_file()


def test_evaluate_takes_model_safetensors_and_the_generic_val_split(tiny_checkpoint,
                                                                   synthetic_root, capsys):
    """`--root` a generic dataset with train/ and val/ and no --split: the validation split."""
    assert main(["evaluate", "--dataset", "generic", "--root", str(synthetic_root / "source"),
                 "--checkpoint", str(tiny_checkpoint / "model.safetensors"),
                 "--limit", "1"]) == 0
    assert "\nmiou " in capsys.readouterr().out


def test_a_generic_dataset_without_split_opens_its_validation_split(synthetic_root, capsys):
    assert main(["data", "info", "--dataset", "generic", "--root",
                 str(synthetic_root / "source"), "--check", "1"]) == 0
    assert f"generic at {synthetic_root / 'source'}: 4 images" in capsys.readouterr().out
