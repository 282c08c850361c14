"""`storage.review_export`: the files CVAT and Label Studio import, from a small round."""

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from scipy import ndimage

from storage.errors import StorageError
from storage.review_export import (
    DOUBTFUL_WHERE,
    doubtful_images,
    export_review,
    image_url,
    local_files_root,
    review_selection,
)
from storage.samples import select_images
from storage.workspace import Workspace
from tests.storage.conftest import make_images

# pycocotools, the independent check here, trips numpy 2's __array__(copy=) deprecation itself
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools")

CLASSES = [f"class{i}" for i in range(5)]
H, W = 24, 32


def review_round(root: str) -> tuple[Workspace, list]:
    """Round 1 of four images (3, 2, 0 and 4 regions; odd regions are gated but untrusted),
    committed in two shards."""
    ws = Workspace(root)
    images = make_images(4, [3, 2, 0, 4], seed=3, height=H, width=W, prefix="cam")
    ws.write_shard(1, 0, "k0", images[:2])
    ws.write_shard(1, 1, "k1", images[2:])
    ws.commit_round(1, 2)
    return ws, images


def write_pictures(root, images) -> str:
    for image in images:
        path = root / image.image_id
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((image.height, image.width, 3), np.uint8)).save(path, "png")
    return str(root)


def test_doubtful_images_are_those_with_an_untrusted_gated_region(tmp_path):
    ws, images = review_round(str(tmp_path / "ws"))
    expected = [im.image_id for im in images
                if any(r.gated and not r.accepted for r in im.regions)]
    assert sorted(doubtful_images(ws, 1)) == sorted(expected)
    assert len(expected) == 3  # the image without regions is not sent
    assert doubtful_images(ws, 1, limit=1) == ["cam/0003.jpg"]  # two doubtful rows, most
    assert doubtful_images(ws, 1, where="class_id = 99") == []


def test_a_region_whose_class_clip_did_not_pick_is_doubtful(tmp_path):
    ws = Workspace(str(tmp_path / "ws"))
    images = make_images(3, [2], seed=4, height=H, width=W, prefix="cam")
    for im in images:  # every gated region trusted by SAM with a high IoU: nothing doubtful...
        for r in im.regions:
            r.gated, r.accepted, r.sam_iou = True, True, 0.95
            r.paints = "refined" if r.refined_mask is not None else "coarse"
            r.clip_class_id = r.class_id
    images[1].regions[0].clip_class_id = (images[1].regions[0].class_id + 1) % 5
    images[1].regions[0].paints = "none"  # ...but CLIP picked another class here
    ws.write_shard(1, 0, "k0", images)
    ws.commit_round(1, 1)
    assert doubtful_images(ws, 1) == ["cam/0001.jpg"]


def test_cvat_coco_holds_every_mask_of_the_review_images(tmp_path):
    ws, images = review_round(str(tmp_path / "ws"))
    done = export_review(ws, 1, str(tmp_path / "out"), "cvat", CLASSES,
                         image_root=write_pictures(tmp_path / "pics", images))
    coco = COCO(str(tmp_path / "out" / "annotations.json"))  # pycocotools loads it
    painted = select_images(ws, 1)
    doubtful = select_images(ws, 1, DOUBTFUL_WHERE)
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == CLASSES
    assert len(coco.imgs) == done["images"] == 3
    for image in coco.imgs.values():
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
        ids = {a["ovseg"]["region_id"] for a in anns}
        name = image["file_name"]
        assert ids == set(painted[name].region_ids) | set(doubtful[name].region_ids)
        marked = {a["ovseg"]["region_id"] for a in anns
                  if a["ovseg"]["doubtful"]}
        assert marked == set(doubtful[name].region_ids.tolist())
        for ann in anns:
            rid = ann["ovseg"]["region_id"]
            source = images[int(name[4:8])].regions[rid]
            mask = source.refined_mask if source.paints == "refined" else source.coarse_mask
            assert np.array_equal(coco.annToMask(ann).astype(bool), mask)
            assert CLASSES[ann["category_id"] - 1] == source.class_name
    listed = (tmp_path / "out" / "images.txt").read_text().split()
    assert len(listed) == 3 and all(p.startswith(str(tmp_path / "pics")) for p in listed)
    assert sorted(p.relative_to(tmp_path / "out" / "images").as_posix()
                  for p in (tmp_path / "out" / "images").rglob("*.jpg")) == sorted(coco_names(coco))
    assert [x["name"] for x in json.loads((tmp_path / "out" / "labels.json").read_text())] \
        == CLASSES


def coco_names(coco) -> list[str]:
    return [image["file_name"] for image in coco.imgs.values()]


def test_label_studio_tasks_carry_polygons_in_percent_and_a_config(tmp_path):
    ws, images = review_round(str(tmp_path / "ws"))
    export_review(ws, 1, str(tmp_path / "ls"), "label-studio", CLASSES,
                  image_root="https://data.example/imgs/")
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    selections = review_selection(ws, 1)
    assert [t["data"]["ovseg_image_id"] for t in tasks] == sorted(selections)
    assert tasks[0]["data"]["image"] == "https://data.example/imgs/cam/0000.jpg"
    for task in tasks:
        selection = selections[task["data"]["ovseg_image_id"]]
        (prediction,) = task["predictions"]
        drawn = np.zeros((H, W), bool)
        for result in prediction["result"]:
            assert result["type"] == "polygonlabels" and result["from_name"] == "label"
            assert (result["original_width"], result["original_height"]) == (W, H)
            points = np.array(result["value"]["points"])
            assert points.min() >= 0 and points.max() <= 100
            flat = (points * [W / 100, H / 100]).ravel().tolist()
            drawn |= mask_utils.decode(mask_utils.frPyObjects([flat], H, W))[:, :, 0] > 0
        masks = selection.masks()
        filled = np.any([ndimage.binary_fill_holes(m) for m in masks], axis=0)
        assert not (drawn & ~filled).any()  # outlines: holes filled, nothing outside
        parts = np.any([np.isin(lab, [i for i in range(1, n + 1) if (lab == i).sum() >= 4])
                        for lab, n in map(ndimage.label, masks)], axis=0)
        assert (parts & ~drawn).sum() <= 0.01 * parts.sum()  # only specks left out
        assert (masks.any(axis=0) & ~drawn).sum() > 0  # ... and there were specks
    config = ET.fromstring((tmp_path / "ls" / "labeling_config.xml").read_text())
    polygons = config.find("PolygonLabels")
    assert polygons.get("toName") == config.find("Image").get("name") == "image"
    assert [label.get("value") for label in polygons] == CLASSES


def test_label_studio_local_files_urls_sit_one_folder_below_the_document_root(tmp_path):
    """Label Studio 1.23 serves /data/local-files/?d=D only under a project's Local files
    storage, whose path must lie below LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT (not be it)."""
    pictures = tmp_path / "pics"
    assert image_url("cam/0 1.jpg", f"{pictures}/") == "/data/local-files/?d=pics/cam/0%201.jpg"
    assert local_files_root(str(pictures)) == str(tmp_path)
    assert image_url("cam/0001.jpg", None) == "/data/local-files/?d=cam/0001.jpg"


def test_export_refuses_an_uncommitted_round_and_a_wrong_vocabulary(tmp_path):
    ws, _ = review_round(str(tmp_path / "ws"))
    with pytest.raises(StorageError, match="round 2 is not a committed round"):
        export_review(ws, 2, str(tmp_path / "out"), "cvat", CLASSES)
    with pytest.raises(StorageError, match="vocabulary"):
        export_review(ws, 1, str(tmp_path / "out"), "cvat", ["a", "b"])
    with pytest.raises(StorageError, match="no such image"):
        export_review(ws, 1, str(tmp_path / "out"), "cvat", CLASSES,
                      image_root=str(tmp_path / "nowhere"))
