"""`ovseg review export|import` on a small committed round: the loop through the command line,
and user mistakes as one line on stderr with exit code 2."""

import json
import subprocess
import sys

import pytest

from flows.cli import main
from tests.storage.test_review_export import review_round, write_pictures


@pytest.fixture
def round_one(tmp_path):
    ws, images = review_round(str(tmp_path / "ws"))
    return ws.root, write_pictures(tmp_path / "pics", images)


def sql_json(root: str, query: str, capsys) -> list[dict]:
    assert main(["sql", query, "--workspace", root, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_export_correct_import_and_query(round_one, tmp_path, capsys):
    root, pictures = round_one
    out = tmp_path / "review"
    assert main(["review", "export", "--round", "1", "--tool", "cvat", "--out", str(out),
                 "--image-root", pictures, "--workspace", root]) == 0
    assert "wrote 3 image(s), 9 mask(s) for cvat" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "images" / "cam").iterdir()) == [
        "0000.jpg", "0001.jpg", "0003.jpg"]
    coco = json.loads((out / "annotations.json").read_text())
    class2 = next(c["id"] for c in coco["categories"] if c["name"] == "class2")
    coco["annotations"][0]["category_id"] = class2  # the reviewer's correction
    del coco["annotations"][-1]
    corrected = tmp_path / "corrected.json"
    corrected.write_text(json.dumps(coco))
    assert main(["review", "import", str(corrected), "--workspace", root]) == 0
    assert "imported 8 mask(s) on 3 image(s) of round 1" in capsys.readouterr().out
    query = ("SELECT count(*) AS n, count(DISTINCT image_id) AS images, "
             "count(*) FILTER (WHERE class_name = 'class2') AS class2 FROM human_labels")
    first = sql_json(root, query, capsys)
    assert first[0]["n"] == 8 and first[0]["images"] == 3 and first[0]["class2"] >= 1
    assert main(["review", "import", str(corrected), "--workspace", root]) == 0
    assert "was imported before" in capsys.readouterr().out
    assert sql_json(root, query, capsys) == first
    assert sql_json(root, "SELECT stage, round FROM rounds", capsys) == [
        {"stage": "review_import", "round": 1}]


def test_label_studio_export_without_an_image_root(round_one, tmp_path, capsys):
    root, _ = round_one
    assert main(["review", "export", "--round", "1", "--tool", "label-studio", "--limit", "1",
                 "--out", str(tmp_path / "ls"), "--workspace", root]) == 0
    (task,) = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    assert task["data"]["image"] == "/data/local-files/?d=cam/0003.jpg"


def test_label_studio_export_names_the_document_root_and_the_storage(round_one, tmp_path,
                                                                     capsys):
    root, pictures = round_one
    assert main(["review", "export", "--round", "1", "--tool", "label-studio", "--limit", "1",
                 "--out", str(tmp_path / "ls"), "--image-root", pictures,
                 "--workspace", root]) == 0
    out = capsys.readouterr().out
    assert f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={tmp_path} " in out
    assert "Local files storage" in out and out.rstrip().endswith(pictures)
    (task,) = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    assert task["data"]["image"] == "/data/local-files/?d=pics/cam/0003.jpg"


def one_line_error(argv, capsys, expected: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("ovseg review: error:") and expected in err, err


def test_mistakes_are_one_line_and_exit_2(round_one, tmp_path, capsys):
    root, _ = round_one
    ws = ["--workspace", root]
    (tmp_path / "notes.txt").write_text("just some notes")
    one_line_error(["review", "import", str(tmp_path / "notes.txt"), *ws], capsys, "not JSON")
    (tmp_path / "other.json").write_text('{"type": "FeatureCollection"}')
    one_line_error(["review", "import", str(tmp_path / "other.json"), *ws], capsys,
                   "neither a COCO JSON")
    one_line_error(["review", "import", str(tmp_path / "missing.json"), *ws], capsys,
                   "no such file")
    one_line_error(["review", "export", "--round", "9", "--tool", "cvat", "--out",
                    str(tmp_path / "o"), *ws], capsys, "round 9 is not a committed round")
    one_line_error(["review", "export", "--round", "1", "--tool", "cvat", "--limit", "0",
                    "--out", str(tmp_path / "o"), *ws], capsys, "--limit 0")
    one_line_error(["review", "export", "--round", "1", "--tool", "cvat", "--where",
                    "no_such_column > 1", "--out", str(tmp_path / "o"), *ws], capsys,
                   "no_such_column")
    assert main(["review", "export", "--round", "1", "--tool", "cvat", "--where",
                 "class_id = 99", "--out", str(tmp_path / "none"), *ws]) == 0
    assert "nothing to review" in capsys.readouterr().out
    assert not (tmp_path / "none").exists()
    assert main(["review", "export", "--round", "1", "--tool", "cvat", "--out",
                 str(tmp_path / "o"), *ws]) == 0
    capsys.readouterr()
    coco = json.loads((tmp_path / "o" / "annotations.json").read_text())
    one_line_error(["review", "import", str(tmp_path / "o" / "annotations.json"), "--round",
                    "9", *ws], capsys, "round 9 is not a committed round")
    coco["categories"][0]["name"] = "zebra"
    coco["annotations"][0]["category_id"] = coco["categories"][0]["id"]
    (tmp_path / "zebra.json").write_text(json.dumps(coco))
    one_line_error(["review", "import", str(tmp_path / "zebra.json"), *ws], capsys,
                   "unknown class 'zebra'")
    one_line_error(["review", "import", str(tmp_path / "zebra.json"), "--workspace",
                    str(tmp_path / "nowhere")], capsys, "no workspace at")


def test_the_installed_command_prints_no_traceback(round_one, tmp_path):
    root, _ = round_one
    (tmp_path / "bad.json").write_text("[1, 2]")
    out = subprocess.run([sys.executable, "-m", "flows.cli", "review", "import",
                          str(tmp_path / "bad.json"), "--workspace", root],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().startswith("ovseg review: error:")
    assert out.stderr.count("\n") == 1


def _nothing_imported(root) -> bool:
    from storage.workspace import Workspace

    return not any(r.stage == "review_import" for r in Workspace(root).lineage())


def test_ovseg_s_own_unedited_exports_are_refused_without_the_flag(round_one, tmp_path, capsys):
    root, _ = round_one
    ws = ["--workspace", root]
    assert main(["review", "export", "--round", "1", "--tool", "cvat", "--out",
                 str(tmp_path / "cvat"), *ws]) == 0
    assert main(["export", "--round", "1", "--format", "coco", "--out", str(tmp_path / "coco"),
                 *ws]) == 0
    capsys.readouterr()
    review = str(tmp_path / "cvat" / "annotations.json")
    for path in (review, str(tmp_path / "coco" / "pseudo_labels_round=001.json")):
        one_line_error(["review", "import", path, *ws], capsys,
                       "pass --allow-unedited if a person checked these masks")
        assert _nothing_imported(root)
    assert main(["review", "import", review, "--allow-unedited", *ws]) == 0
    assert "imported 9 mask(s) on 3 image(s)" in capsys.readouterr().out


def test_a_tool_s_export_of_unchanged_masks_is_refused_a_deletion_is_not(round_one, tmp_path,
                                                                         capsys):
    """Without ovseg's marks (what CVAT and Label Studio write back): the same masks, as
    Label Studio polygons, are refused; deleting a mask that paints is a correction."""
    root, _ = round_one
    ws = ["--workspace", root]
    assert main(["review", "export", "--round", "1", "--tool", "label-studio", "--out",
                 str(tmp_path / "ls"), *ws]) == 0
    capsys.readouterr()
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    exported = [dict(task, id=n, annotations=[{"id": n, "result": task["predictions"][0]["result"],
                                               "completed_by": 1}])
                for n, task in enumerate(tasks, start=1)]
    (tmp_path / "same.json").write_text(json.dumps(exported))
    one_line_error(["review", "import", str(tmp_path / "same.json"), *ws], capsys,
                   "pseudo-labels unchanged")
    assert _nothing_imported(root)
    exported[0]["annotations"][0]["result"] = exported[0]["annotations"][0]["result"][1:]
    (tmp_path / "deleted.json").write_text(json.dumps(exported))
    assert main(["review", "import", str(tmp_path / "deleted.json"), *ws]) == 0
    assert "imported" in capsys.readouterr().out
