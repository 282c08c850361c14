"""refine-check on a COCO annotation file: unannotated pixels are background, categories are
contiguous by id after it, crowd is void, the smaller of two overlapping objects wins, images are
found where CVAT's COCO export puts them, and the CLI checks the file like a VOC folder."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flows.cli import main
from ovseg_core.errors import OvsegError
from ovseg_core.selftrain.coco_set import VOID, read_coco_file

H, W = 40, 48


def coco_export(root: Path) -> Path:
    """CVAT's layout: annotations/instances_default.json and images/a.jpg, hand-made."""
    (root / "annotations").mkdir(parents=True)
    (root / "images").mkdir()
    Image.fromarray(np.full((H, W, 3), 120, np.uint8)).save(root / "images" / "a.jpg")
    table = [4, 4, 36, 4, 36, 30, 4, 30]  # a 32 x 26 box, category 7
    cup = [10, 10, 20, 10, 20, 20, 10, 20]  # inside it, category 3
    document = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": H, "width": W}],
        "categories": [{"id": 7, "name": "table"}, {"id": 3, "name": "cup"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "segmentation": [cup], "iscrowd": 0,
             "area": 100, "bbox": [10, 10, 10, 10]},
            {"id": 2, "image_id": 1, "category_id": 7, "segmentation": [table], "iscrowd": 0,
             "area": 832, "bbox": [4, 4, 32, 26]},
            {"id": 3, "image_id": 1, "category_id": 3, "iscrowd": 1, "area": 16,
             "segmentation": {"size": [H, W], "counts": [H * 40 + 2, 4, H - 4, 4,
                                                          H * (W - 41) - 6]},  # sums to H * W
             "bbox": [40, 2, 2, 4]},
        ]}
    path = root / "annotations" / "instances_default.json"
    path.write_text(json.dumps(document))
    return path


def test_coco_file_becomes_background_classes_and_void(tmp_path):
    names, (sample,) = read_coco_file(coco_export(tmp_path))
    assert names == ["background", "cup", "table"]  # by category id: 3, 7
    label = sample.label
    assert label[15, 15] == 1  # the cup, drawn over the larger table
    assert label[25, 30] == 2 and label[35, 44] == 0 and label[0, 0] == 0
    assert (label == VOID).sum() == 8 and label[3, 40] == VOID  # crowd RLE: columns 40-41
    assert sample.image_id == "a" and sample.rgb.shape == (H, W, 3)


def test_annotation_of_an_unlisted_category_is_an_error(tmp_path):
    path = coco_export(tmp_path)
    document = json.loads(path.read_text())
    document["annotations"][0]["category_id"] = 9  # not in "categories"
    path.write_text(json.dumps(document))
    names, samples = read_coco_file(path)
    with pytest.raises(OvsegError, match=r"a.jpg has annotations of category ids \[9\]"):
        samples[0]


def test_missing_image_names_where_it_looked(tmp_path):
    path = coco_export(tmp_path)
    (tmp_path / "images" / "a.jpg").unlink()
    with pytest.raises(OvsegError, match="a.jpg"):
        read_coco_file(path)


def test_cli_checks_a_coco_file_with_tiny_sam(tmp_path):
    out = tmp_path / "check.json"
    assert main(["refine-check", str(coco_export(tmp_path)), "--sam", "tiny", "--json",
                 str(out)]) == 0
    result = json.loads(out.read_text())
    assert {p["class_id"] for p in result["pairs"]} == {1, 2}  # void and background not scored
