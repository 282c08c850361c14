"""`ovseg review import` of corrupt or hostile files: one line on stderr, exit code 2, nothing
stored, and the process never crashes (storage.review_limits)."""

import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from flows.cli import main
from storage import review_limits
from tests.storage.test_review_export import review_round

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools")


@pytest.fixture
def exported(tmp_path):
    """(workspace root, ovseg's review export of round 1 as a dict, with one mask changed so
    that it is a correction)."""
    ws, _ = review_round(str(tmp_path / "ws"))
    assert main(["review", "export", "--round", "1", "--tool", "cvat", "--out",
                 str(tmp_path / "out"), "--workspace", ws.root]) == 0
    coco = json.loads((tmp_path / "out" / "annotations.json").read_text())
    coco["annotations"][0]["segmentation"] = [[1, 1, 9, 1, 9, 7, 1, 7]]  # the fix: a polygon
    return ws, coco


def nothing_stored(ws) -> bool:
    return not ws.fs.exists(ws._abs("human_labels")) and not any(
        r.stage == "review_import" for r in ws.lineage())


def refused(ws, path, capsys, expected: str) -> None:
    assert main(["review", "import", str(path), "--workspace", ws.root]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("ovseg review: error:") and expected in err, err
    assert nothing_stored(ws)


def refused_in_a_process(ws, path, expected: str) -> None:
    """Through a separate process: the unchecked file crashes it (signal 11)."""
    out = subprocess.run([sys.executable, "-m", "flows.cli", "review", "import", str(path),
                          "--workspace", ws.root], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert out.stderr.count("\n") == 1 and expected in out.stderr, out.stderr
    assert nothing_stored(ws)


def write(tmp_path, name: str, document) -> str:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return str(path)


def test_the_changed_export_itself_imports(exported, tmp_path, capsys):
    ws, coco = exported
    assert main(["review", "import", write(tmp_path, "ok.json", coco),
                 "--workspace", ws.root]) == 0
    assert "imported 9 mask(s) on 3 image(s)" in capsys.readouterr().out


def test_a_polygon_far_outside_the_image_is_refused_not_a_segfault(exported, tmp_path):
    ws, coco = exported
    coco["annotations"][0]["segmentation"] = [[0, 0, 1e12, 0, 1e12, 1e12, 0, 1e12]]
    refused_in_a_process(ws, write(tmp_path, "far.json", coco), "outside the 24x32 image")


def test_rle_runs_longer_than_the_image_are_refused(exported, tmp_path):
    ws, coco = exported
    coco["annotations"][0]["segmentation"] = {"size": [24, 32], "counts": [0, 10 ** 9]}
    refused_in_a_process(ws, write(tmp_path, "runs.json", coco), "RLE runs cover 1000000000")


def test_a_compressed_rle_longer_than_the_image_is_refused(exported, tmp_path, capsys):
    ws, coco = exported
    big = mask_utils.encode(np.ones((240, 320), np.uint8, order="F"))["counts"].decode()
    coco["annotations"][0]["segmentation"] = {"size": [24, 32], "counts": big}
    refused(ws, write(tmp_path, "big_rle.json", coco), capsys, "RLE runs cover 76800")


def test_deeply_nested_json_is_refused(exported, tmp_path, capsys):
    ws, _ = exported
    refused(ws, write(tmp_path, "deep.json", "[" * 200_000 + "]" * 200_000), capsys,
            "nested too deeply")


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_coordinates_that_are_not_finite_are_refused(exported, tmp_path, capsys, value):
    ws, coco = exported
    coco["annotations"][0]["segmentation"] = [[0, 0, 5, 0, 5, 5, 0, 0]]
    text = json.dumps(coco).replace("[[0, 0, 5, 0, 5, 5, 0, 0]]", f"[[0, 0, {value}, 0, 5, 5]]")
    expected = "beyond the range" if value == "1e999" else f"{value} is not a number ovseg reads"
    refused(ws, write(tmp_path, "nan.json", text), capsys, expected)


def test_label_studio_points_that_are_not_finite_are_refused(exported, tmp_path, capsys):
    ws, _ = exported
    task = {"id": 1, "data": {"ovseg_image_id": "cam/0000.jpg"}, "annotations": [
        {"id": 1, "result": [{"type": "polygonlabels", "original_width": 32,
                              "original_height": 24,
                              "value": {"points": [[0, 0], [1e300, 0], [50, 50]],
                                        "polygonlabels": ["class1"]}}]}]}
    refused(ws, write(tmp_path, "ls.json", [task]), capsys, "task 1: a polygon")


@pytest.mark.parametrize("height", [10 ** 9, "1e999", 1e300, "tall"])
def test_huge_or_odd_declared_image_sizes_are_refused(exported, tmp_path, capsys, height):
    ws, coco = exported
    coco["images"][0]["height"] = height
    text = json.dumps(coco).replace('"1e999"', "1e999")
    refused(ws, write(tmp_path, "size.json", text), capsys, str(tmp_path / "size.json"))


def test_a_mask_declaring_a_huge_size_is_refused(exported, tmp_path, capsys):
    ws, coco = exported
    coco["annotations"][0]["segmentation"] = {"size": [10 ** 6, 10 ** 6], "counts": "0"}
    refused(ws, write(tmp_path, "mask_size.json", coco), capsys, "mask size")


def test_too_many_annotations_are_refused(exported, tmp_path, capsys, monkeypatch):
    ws, coco = exported
    monkeypatch.setattr(review_limits, "MAX_ANNOTATIONS", len(coco["annotations"]) - 1)
    refused(ws, write(tmp_path, "many.json", coco), capsys, "more than the 8 one file may hold")


def test_too_many_vertices_are_refused(exported, tmp_path, capsys, monkeypatch):
    ws, coco = exported
    monkeypatch.setattr(review_limits, "MAX_VERTICES", 1000)
    coco["annotations"][0]["segmentation"] = [[1, 1, 2, 1, 2, 2, 1, 2] * 300]
    refused(ws, write(tmp_path, "vertices.json", coco), capsys, "more than 1000 polygon")


def test_a_zip_member_that_unpacks_beyond_the_bound_is_refused(exported, tmp_path, capsys,
                                                               monkeypatch):
    ws, coco = exported
    monkeypatch.setattr(review_limits, "MAX_FILE_BYTES", 1 << 20)
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("annotations/instances_default.json", json.dumps(coco) + " " * (2 << 20))
    assert len(bomb.getvalue()) < 64 << 10  # small on disk, 2 MiB unpacked
    (tmp_path / "bomb.zip").write_bytes(bomb.getvalue())
    refused(ws, tmp_path / "bomb.zip", capsys, "unpacks to")


def test_a_zip_whose_header_understates_its_member_is_refused(exported, tmp_path, capsys,
                                                              monkeypatch):
    ws, coco = exported
    monkeypatch.setattr(review_limits, "MAX_FILE_BYTES", 1 << 20)
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.json", json.dumps(coco) + " " * (2 << 20))
    data = bytearray(bomb.getvalue())
    declared = (2 << 20) + len(json.dumps(coco))
    for offset in range(len(data) - 4):  # rewrite the uncompressed size in both headers
        if int.from_bytes(data[offset:offset + 4], "little") == declared:
            data[offset:offset + 4] = (1000).to_bytes(4, "little")
    (tmp_path / "liar.zip").write_bytes(bytes(data))
    refused(ws, tmp_path / "liar.zip", capsys, str(tmp_path / "liar.zip"))


def test_a_file_beyond_the_bound_is_refused(exported, tmp_path, capsys, monkeypatch):
    ws, coco = exported
    monkeypatch.setattr(review_limits, "MAX_FILE_BYTES", 1 << 20)
    refused(ws, write(tmp_path, "large.json", json.dumps(coco) + " " * (2 << 20)), capsys,
            "larger than 1 MiB")
