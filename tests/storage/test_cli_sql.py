"""`ovseg sql`: formats, bound --param values, one-line errors with exit code 2."""

import csv
import io
import json

import pytest

from flows.cli import main
from storage.workspace import Workspace
from tests.storage.conftest import make_images


@pytest.fixture
def root(tmp_path):
    ws = Workspace(str(tmp_path / "ws"))
    ws.write_shard(1, 0, "k", make_images(3, [2, 0]))
    ws.commit_round(1, 1)
    return ws.root


QUERY = "SELECT image_id, n_regions FROM images WHERE n_regions >= ? ORDER BY image_id"


def test_csv_and_json_formats(root, capsys):
    assert main(["sql", QUERY, "--workspace", root, "--param", "1", "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows == [["image_id", "n_regions"], ["img/0000.jpg", "2"], ["img/0002.jpg", "2"]]
    assert main(["sql", QUERY, "--workspace", root, "--param", "0", "--format", "json"]) == 0
    assert [r["n_regions"] for r in json.loads(capsys.readouterr().out)] == [2, 0, 2]


def test_table_format_is_aligned(root, capsys):
    assert main(["sql", "SELECT * FROM class_stats", "--workspace", root]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["round", "class_id", "class_name"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[-1].endswith("rows)")
    assert main(["sql", QUERY, "--workspace", root, "--param", "0", "--max-rows", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "(1 of 3 rows)"


@pytest.mark.parametrize("query", ["DROP VIEW images", "SELECT * FROM read_csv('/etc/hosts')",
                                   "SELECT nope FROM images"])
def test_errors_print_one_line_and_exit_2(root, capsys, query):
    assert main(["sql", query, "--workspace", root]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert captured.err.startswith("ovseg sql: error:")


def test_missing_workspace_is_a_user_error(tmp_path, capsys):
    assert main(["sql", "SELECT 1", "--workspace", str(tmp_path / "absent")]) == 2
    assert "no workspace" in capsys.readouterr().err
