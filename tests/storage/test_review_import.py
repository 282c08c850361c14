"""`storage.review_import`: corrected CVAT / Label Studio exports back into `human_labels`.

The fixtures are written here by hand in the shape each tool's export has (CVAT "COCO 1.0":
masks as uncompressed RLE with iscrowd 1, polygons as flat lists, categories numbered in the
task's label order; Label Studio JSON: tasks with `annotations` holding `polygonlabels` in
percent), starting from what `ovseg review export` wrote and editing it as a reviewer would.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from storage.errors import StorageError
from storage.query import run_sql
from storage.review_export import export_review
from storage.review_import import import_review
from storage.rle import decode_masks
from storage.samples import PseudoLabelSamples, paint_label_map, select_images
from tests.storage.test_review_export import CLASSES, H, W, review_round

# pycocotools, the independent check here, trips numpy 2's __array__(copy=) deprecation itself
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools")

CVAT_ORDER = ["class3", "class0", "class4", "class2", "class1"]  # the task's label order


def uncompressed_rle(mask: np.ndarray) -> dict:
    """A mask as CVAT's COCO export writes it: column-major runs, starting with a 0-run."""
    flat = mask.flatten(order="F").astype(np.int8)
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    counts = np.diff(bounds).tolist()
    return {"counts": ([0] if flat[0] else []) + counts, "size": list(mask.shape)}


def rectangle(x0, y0, x1, y1) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def cvat_export(tmp_path, ws) -> tuple[str, dict]:
    """A reviewer's CVAT export; returns (path, {image id: [(class name, mask)]} expected)."""
    export_review(ws, 1, str(tmp_path / "to_cvat"), "cvat", CLASSES)
    ours = json.loads((tmp_path / "to_cvat" / "annotations.json").read_text())
    by_image = {im["id"]: im for im in ours["images"]}
    expected, annotations = {}, []

    def add(image, name, mask, segmentation, iscrowd):
        expected.setdefault(image["file_name"], []).append((name, mask))
        annotations.append({"id": len(annotations) + 1, "image_id": image["id"],
                            "category_id": CVAT_ORDER.index(name) + 1,
                            "segmentation": segmentation, "area": float(mask.sum()),
                            "bbox": [0.0, 0.0, 1.0, 1.0], "iscrowd": iscrowd,
                            "attributes": {"occluded": False}})

    for ann in ours["annotations"]:
        image = by_image[ann["image_id"]]
        if image["file_name"] == "cam/0001.jpg":
            continue  # not reviewed: CVAT's task held only the other images
        name = CLASSES[ann["category_id"] - 1]
        mask = decode_masks([ann["segmentation"]["counts"]], H, W)[0]
        if ann["id"] == 2:
            continue  # the reviewer deleted this mask
        if ann["id"] == 3:
            name = "class2"  # ... relabelled this one
        add(image, name, mask, uncompressed_rle(mask), 1)
    first = by_image[1]
    add(first, "class1", rectangle(4, 2, 12, 9), [[4, 2, 12, 2, 12, 9, 4, 9]], 0)  # drawn
    cvat_images = [{"id": im["id"], "width": W, "height": H, "license": 0, "flickr_url": "",
                    "coco_url": "", "date_captured": 0, "file_name": im["file_name"]}
                   for im in ours["images"] if im["file_name"] != "cam/0001.jpg"]
    cvat_images[-1]["file_name"] = "0003.jpg"  # uploaded flat: only the file name is left
    cvat_images.append(dict(cvat_images[0], id=99, file_name="cam/0002.jpg"))  # no masks
    document = {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {"contributor": "", "date_created": "", "description": "", "url": "",
                 "version": "", "year": ""},
        "categories": [{"id": i + 1, "name": n, "supercategory": ""}
                       for i, n in enumerate(CVAT_ORDER)],
        "images": cvat_images, "annotations": annotations}
    path = tmp_path / "instances_default.json"
    path.write_text(json.dumps(document))
    return str(path), expected


def stored(ws) -> dict:
    rows = run_sql(ws, "SELECT image_id, class_name, rle, area FROM human_labels "
                       "ORDER BY image_id, label_id").to_pylist()
    out = {}
    for row in rows:
        mask = decode_masks([row["rle"]], H, W)[0]
        assert row["area"] == mask.sum()
        out.setdefault(row["image_id"], []).append((row["class_name"], mask))
    return out


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        len(a[k]) == len(b[k]) and all(n1 == n2 and np.array_equal(m1, m2)
                                       for (n1, m1), (n2, m2) in zip(a[k], b[k], strict=True))
        for k in a)


def test_cvat_round_trip_stores_the_edited_masks_once(tmp_path, workspace):
    ws, _ = review_round(workspace.root)
    path, expected = cvat_export(tmp_path, ws)
    done = import_review(ws, path, CLASSES)
    assert (done["tool"], done["round"], done["new"]) == ("cvat", 1, True)
    assert done["without_masks"] == ["cam/0002.jpg"]  # listed, no mask: not covered
    assert same(stored(ws), expected)
    assert expected["cam/0000.jpg"][-1][0] == "class1"  # the drawn rectangle, by name
    again = import_review(ws, path, CLASSES)
    copy = tmp_path / "renamed.json"
    shutil.copy(path, copy)
    import_review(ws, str(copy), CLASSES)
    assert not again["new"]
    assert same(stored(ws), expected)  # no duplicates: keyed by the file's sha256
    records = [r for r in ws.lineage() if r.stage == "review_import"]
    assert [(r.round, r.config["source_sha256"], r.row_counts) for r in records] == [
        (1, done["sha256"], {"human_labels": done["rows"], "images": 2})]


def test_a_label_studio_coco_export_is_recorded_as_label_studio(tmp_path, workspace):
    ws, _ = review_round(workspace.root)
    path, expected = cvat_export(tmp_path, ws)
    document = json.loads(Path(path).read_text())
    document["info"]["contributor"] = "Label Studio"  # what Label Studio's COCO export writes
    studio = tmp_path / "from_label_studio.json"
    studio.write_text(json.dumps(document))
    done = import_review(ws, str(studio), CLASSES)
    assert done["tool"] == "label-studio" and same(stored(ws), expected)
    records = [r for r in ws.lineage() if r.stage == "review_import"]
    assert [r.config["tool"] for r in records] == ["label-studio"]


def test_cvat_zip_export_is_read(tmp_path):
    import zipfile

    ws, _ = review_round(str(tmp_path / "ws"))
    path, expected = cvat_export(tmp_path, ws)
    with zipfile.ZipFile(tmp_path / "task.zip", "w") as z:
        z.write(path, "annotations/instances_default.json")
    assert import_review(ws, str(tmp_path / "task.zip"), CLASSES)["rows"] == sum(
        len(v) for v in expected.values())


def label_studio_export(tmp_path, ws) -> tuple[str, dict]:
    """A reviewer's Label Studio JSON export; returns (path, expected masks by image)."""
    export_review(ws, 1, str(tmp_path / "to_ls"), "label-studio", CLASSES)
    tasks = json.loads((tmp_path / "to_ls" / "tasks.json").read_text())
    exported, expected = [], {}
    for number, task in enumerate(tasks, start=1):
        image_id = task["data"]["ovseg_image_id"]
        results = [dict(r, origin="prediction") for r in task["predictions"][0]["result"]]
        if image_id == "cam/0000.jpg":
            results[0]["value"] = dict(results[0]["value"], polygonlabels=["class2"])
            del results[1]
            results.append({"id": "new1", "from_name": "label", "to_name": "image",
                            "type": "polygonlabels", "origin": "manual", "original_width": W,
                            "original_height": H, "image_rotation": 0,
                            "value": {"points": [[12.5, 25.0], [50.0, 25.0], [50.0, 75.0],
                                                 [12.5, 75.0]], "closed": True,
                                      "polygonlabels": ["class1"]}})
        data = dict(task["data"])
        if image_id == "cam/0001.jpg":  # a task imported by URL only, served by Label Studio
            data = {"image": "/data/upload/1/5f2a9c1e-0001.jpg"}
        annotations = [] if image_id == "cam/0003.jpg" else [  # 0003 was never opened
            {"id": 100 + number, "completed_by": 7, "result": results, "was_cancelled": False,
             "ground_truth": False, "created_at": "2026-11-20T10:00:00.000000Z",
             "updated_at": "2026-11-20T10:05:00.000000Z", "lead_time": 31.5,
             "prediction": {}, "result_count": 0, "unique_id": f"u{number}",
             "import_id": None, "last_action": None, "task": number, "project": 3,
             "updated_by": 7, "parent_prediction": 50 + number, "parent_annotation": None,
             "last_created_by": None},
            {"id": 200 + number, "completed_by": 8, "result": [], "was_cancelled": True,
             "created_at": "2026-11-21T09:00:00.000000Z",
             "updated_at": "2026-11-21T09:00:00.000000Z", "task": number}]
        exported.append({"id": number, "annotations": annotations, "file_upload": None,
                         "drafts": [], "predictions": [50 + number], "data": data,
                         "meta": {}, "created_at": "2026-11-20T09:00:00.000000Z",
                         "updated_at": "2026-11-20T10:05:00.000000Z", "inner_id": number,
                         "total_annotations": len(annotations), "cancelled_annotations": 0,
                         "total_predictions": 1, "comment_count": 0, "project": 3})
        if annotations:
            expected[image_id] = [(r["value"]["polygonlabels"][0], polygon_mask(r))
                                  for r in results]
    path = tmp_path / "project-3-at-2026-11-21.json"
    path.write_text(json.dumps(exported))
    return str(path), expected


def polygon_mask(result: dict) -> np.ndarray:
    points = np.array(result["value"]["points"]) / 100.0 * [W, H]
    rle = mask_utils.frPyObjects([points.ravel().tolist()], H, W)
    return mask_utils.decode(rle)[:, :, 0].astype(bool)


def test_label_studio_round_trip_reads_the_latest_annotation(tmp_path):
    ws, _ = review_round(str(tmp_path / "ws"))
    path, expected = label_studio_export(tmp_path, ws)
    done = import_review(ws, path, CLASSES, round=1)
    assert (done["tool"], done["images"]) == ("label-studio", 2)
    assert same(stored(ws), expected)
    assert np.array_equal(expected["cam/0000.jpg"][-1][1], rectangle(4, 6, 16, 18))
    who = run_sql(ws, "SELECT DISTINCT annotator, annotated_at, tool FROM human_labels")
    assert who.to_pylist() == [{"annotator": "7", "annotated_at": "2026-11-20T10:05:00.000000Z",
                                "tool": "label-studio"}]


def test_retraining_paints_the_human_masks_of_covered_images(tmp_path):
    ws, images = review_round(str(tmp_path / "ws"))
    path, expected = cvat_export(tmp_path, ws)
    pseudo = select_images(ws, 1)
    before = PseudoLabelSamples(ws, 1, image_loader=lambda i: None)
    assert before.image_ids == ["cam/0000.jpg", "cam/0001.jpg", "cam/0003.jpg"]
    import_review(ws, path, CLASSES)
    after = PseudoLabelSamples(ws, 1, image_loader=lambda i: None)
    assert after.image_ids == before.image_ids
    for index, image_id in enumerate(after.image_ids):
        if image_id in expected:
            names, masks = zip(*expected[image_id], strict=True)
            human = paint_label_map(H, W, np.array([CLASSES.index(n) for n in names]),
                                    np.ones(len(names)), np.stack(masks))
            assert np.array_equal(after.label_map(index), human)
            assert not np.array_equal(after.label_map(index), pseudo[image_id].label_map())
        else:
            assert np.array_equal(after.label_map(index), pseudo[image_id].label_map())


@pytest.mark.parametrize("content, message", [
    ('{"foo": 1}', "neither a COCO JSON"),
    ("<html>not json</html>", "not JSON"),
    ("[]", "neither a COCO JSON"),
])
def test_a_file_in_neither_format_is_refused(tmp_path, content, message):
    ws, _ = review_round(str(tmp_path / "ws"))
    (tmp_path / "bad.json").write_text(content)
    with pytest.raises(StorageError, match=message):
        import_review(ws, str(tmp_path / "bad.json"), CLASSES)
    assert run_sql(ws, "SELECT count(*) AS n FROM human_labels").to_pylist() == [{"n": 0}]


def test_unknown_class_missing_round_brushes_and_foreign_images_are_refused(tmp_path):
    ws, _ = review_round(str(tmp_path / "ws"))
    path, _ = cvat_export(tmp_path, ws)
    with pytest.raises(StorageError, match="round 4 is not a committed round"):
        import_review(ws, path, CLASSES, round=4)
    unknown = "unknown class 'class[234]'; the vocabulary is: class0, class1"
    with pytest.raises(StorageError, match=unknown):
        import_review(ws, path, ["class0", "class1"])
    document = json.loads(Path(path).read_text())
    document["images"][0]["file_name"] = "elsewhere/other.jpg"
    (tmp_path / "foreign.json").write_text(json.dumps(document))
    with pytest.raises(StorageError, match="'elsewhere/other.jpg' is not an image of round 1"):
        import_review(ws, str(tmp_path / "foreign.json"), CLASSES)
    ls_path, _ = label_studio_export(tmp_path, ws)
    tasks = json.loads(Path(ls_path).read_text())
    tasks[0]["annotations"][0]["result"].append({
        "type": "brushlabels", "from_name": "label", "to_name": "image",
        "value": {"format": "rle", "rle": [0, 1, 2], "brushlabels": ["class0"]}})
    (tmp_path / "brush.json").write_text(json.dumps(tasks))
    with pytest.raises(StorageError, match="'brushlabels' result; ovseg reads polygonlabels"):
        import_review(ws, str(tmp_path / "brush.json"), CLASSES)
    assert run_sql(ws, "SELECT count(*) AS n FROM human_labels").to_pylist() == [{"n": 0}]
    assert not [r for r in ws.lineage() if r.stage == "review_import"]
