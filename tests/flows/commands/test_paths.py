"""`flows.commands.paths.checkpoint_folder`: a checkpoint folder or one of its files."""

import pytest

from flows.commands.paths import checkpoint_folder
from ovseg_core.errors import OvsegError


@pytest.fixture
def checkpoint(tmp_path):
    folder = tmp_path / "stage1"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"x")
    (folder / "config.json").write_text("{}")
    return folder


def test_the_folder_or_one_of_its_files_gives_the_folder(checkpoint):
    assert checkpoint_folder(str(checkpoint)) == str(checkpoint)
    assert checkpoint_folder(str(checkpoint / "model.safetensors")) == str(checkpoint)
    assert checkpoint_folder(str(checkpoint / "config.json")) == str(checkpoint)


def test_mistakes_say_what_to_give(checkpoint, tmp_path):
    (tmp_path / "weights.pt").write_bytes(b"x")
    with pytest.raises(OvsegError, match="weights.pt is a file; give the checkpoint folder"):
        checkpoint_folder(str(tmp_path / "weights.pt"))
    with pytest.raises(OvsegError, match="nowhere: not found; give the checkpoint folder"):
        checkpoint_folder(str(tmp_path / "nowhere"))
    (checkpoint / "config.json").unlink()
    with pytest.raises(OvsegError, match=f"{checkpoint} has no config.json$"):
        checkpoint_folder(str(checkpoint / "model.safetensors"))
