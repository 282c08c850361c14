"""`ovseg sql`: cut cells are marked, JSON columns come out as JSON, CLIP's class has its name,
every view is in the help, and errors name the user's own text and the columns there are."""

import json
import re

import pytest

from flows.cli import build_parser, main
from storage.query import connect, view_names
from storage.records import LineageRecord, utc_now
from storage.workspace import Workspace
from tests.storage.conftest import make_images

METRICS = {f"target_class_{i}_miou": 0.25 + i / 100 for i in range(8)}


@pytest.fixture
def root(tmp_path):
    ws = Workspace(str(tmp_path / "ws"))
    images = make_images(3, [3, 1], seed=1)
    for image in images:
        for region in image.regions:
            region.clip_class_id = (region.class_id + 1) % 5
    ws.write_shard(1, 0, "k", images)
    ws.commit_round(1, 1)
    now = utc_now()
    ws.write_lineage(LineageRecord(
        stage="evaluate", round=1, parent_round=0, checkpoint_uri=None, checkpoint_sha256=None,
        config={"a": 1}, package_version="0", git_commit=None, dataset_manifest_hash=None,
        gate_threshold=None, started_at=now, ended_at=now, status="completed",
        row_counts={"images": 3}, metrics=METRICS))
    return ws.root


def sql(root, capsys, *args) -> str:
    assert main(["sql", *args, "--workspace", root]) == 0
    return capsys.readouterr().out


def test_a_cut_cell_is_marked_and_the_table_says_how_to_see_it_whole(root, capsys):
    out = sql(root, capsys, "SELECT stage, metrics FROM rounds")
    cell = out.splitlines()[2].split(None, 1)[1]
    assert len(cell) == 40 and cell.endswith("\u2026")
    assert out.splitlines()[-1] == ("(cells cut at 40 characters, marked \u2026: see them whole "
                                    "with --max-width 0 or --format json)")
    whole = sql(root, capsys, "SELECT metrics FROM rounds", "--max-width", "0")
    assert json.loads(whole.splitlines()[2]) == METRICS and "cut" not in whole
    short = sql(root, capsys, "SELECT stage FROM rounds")
    assert "cut" not in short


def test_json_columns_are_json_objects(root, capsys):
    (row,) = json.loads(sql(root, capsys, "SELECT config, row_counts, metrics, "
                                          "metrics->'target_class_0_miou' AS m0, "
                                          "stage FROM rounds", "--format", "json"))
    assert row["metrics"] == METRICS and row["config"] == {"a": 1}
    assert row["row_counts"] == {"images": 3} and row["m0"] == 0.25 and row["stage"] == "evaluate"
    # the text operators still work on the JSON columns
    out = json.loads(sql(root, capsys, "SELECT (metrics->>'target_class_1_miou')::DOUBLE AS m "
                                       "FROM rounds", "--format", "json"))
    assert out == [{"m": 0.26}]


def test_clip_class_id_comes_with_its_name(root, capsys):
    rows = json.loads(sql(root, capsys, "SELECT class_id, class_name, clip_class_id, "
                                        "clip_class_name FROM pseudo_labels ORDER BY image_id, "
                                        "region_id", "--format", "json"))
    names = {r["class_id"]: r["class_name"] for r in rows}
    assert rows and all(r["clip_class_name"] == names.get(r["clip_class_id"]) for r in rows)
    assert any(r["clip_class_name"] is not None for r in rows)


def test_the_help_lists_every_view(root):
    with connect(root) as con:
        views = view_names(con)
    assert "quarantine" in views
    sql_parser = build_parser()._subparsers._group_actions[0].choices["sql"]
    listed = sql_parser.epilog.split("examples:")[0]
    assert listed.startswith("views:")
    assert set(views) <= set(re.findall(r"[a-z_]+", listed)), listed


def test_a_missing_column_lists_the_columns(root, capsys):
    assert main(["sql", "SELECT confidnce FROM images", "--workspace", root]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'column "confidnce" not found' in err
    assert "(the columns of images: round, shard, image_id," in err


@pytest.mark.parametrize(("where", "expected"), [
    ("confidence >", "--where 'confidence >': syntax error at or near \">\""),
    ("confidnce > 0.5", "--where 'confidnce > 0.5': Referenced column \"confidnce\" not found"),
    ("1 = 1); SELECT (1", "--where '1 = 1); SELECT (1': "),
])
@pytest.mark.parametrize("command", [["export", "--format", "coco"],
                                     ["review", "export", "--tool", "cvat"]])
def test_a_where_error_names_the_user_s_text(root, tmp_path, capsys, where, expected, command):
    assert main([*command, "--round", "1", "--where", where, "--out", str(tmp_path / "o"),
                 "--workspace", root]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err
    assert "AND (" not in err and "round = " not in err
    if "confidnce" in where:
        assert "the columns of pseudo_labels: " in err and "clip_class_name" in err
