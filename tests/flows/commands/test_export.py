"""`ovseg export` and `ovseg review export` of round 0: stage one, which has no pseudo-labels."""

import pytest

from flows.cli import main
from tests.storage.test_review_export import review_round


@pytest.mark.parametrize("command", [["export", "--format", "coco"],
                                     ["review", "export", "--tool", "cvat"]])
def test_round_0_is_stage_one_without_pseudo_labels(tmp_path, capsys, command):
    ws, _ = review_round(str(tmp_path / "ws"))
    argv = [*command, "--round", "0", "--out", str(tmp_path / "out"), "--workspace", ws.root]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "round 0 is stage one" in err and "no pseudo-labels" in err
    assert err.rstrip().endswith("Rounds with pseudo-labels in " + ws.root + ": 1")
    assert not (tmp_path / "out").exists()


def test_a_round_not_committed_lists_the_committed_ones(tmp_path, capsys):
    ws, _ = review_round(str(tmp_path / "ws"))
    assert main(["export", "--round", "3", "--out", str(tmp_path / "out"),
                 "--workspace", ws.root]) == 2
    assert "round 3 is not a committed round of" in capsys.readouterr().err
