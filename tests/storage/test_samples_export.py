"""Selection for retraining (hand-painted label maps) and export round trips."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from storage.errors import StorageError
from storage.export import export_round
from storage.records import ImageRegions, RegionRecord
from storage.samples import PseudoLabelSamples
from storage.schema import IGNORE_INDEX
from tests.storage.conftest import make_images


def _rect(y0, y1, x0, x1, shape=(6, 8)):
    mask = np.zeros(shape, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _hand_made(workspace, big_class=7, fallback="none"):
    """One 6x8 image, four regions:
    A class 3: refined rows 0-3 x cols 0-4, conf 0.9 * sam 0.9 = 0.81, accepted
    B class 5: refined rows 2-6 x cols 2-6, conf 0.95 * sam 0.9 = 0.855, accepted (wins overlap)
    C class big_class: coarse rows 5-6, conf 1.0, gated but not accepted; paints `fallback`
    D class 1: everything, conf 0.3, not gated (paints nothing)
    """
    regions = [
        RegionRecord(3, "cat", 0.9, True, 0.9, 0.8, True, "refined", _rect(0, 4, 0, 5),
                     _rect(0, 4, 0, 4), (0, 0, 5, 4)),
        RegionRecord(5, "dog", 0.95, True, 0.9, 0.8, True, "refined", _rect(2, 6, 2, 7),
                     _rect(2, 6, 2, 6), (2, 2, 7, 6)),
        RegionRecord(big_class, "tree", 1.0, True, 0.5, 0.1, False, fallback, _rect(5, 6, 0, 8),
                     _rect(0, 1, 0, 1), (0, 5, 8, 6)),
        RegionRecord(1, "sky", 0.3, False, None, None, False, "none", _rect(0, 6, 0, 8), None,
                     (0, 0, 8, 6)),
    ]
    workspace.write_shard(1, 0, "k", [ImageRegions("x/one.png", 6, 8, 0.9, "s", regions),
                                      ImageRegions("x/empty.png", 6, 8, 0.9, "s", [])])
    workspace.commit_round(1, 1)


def _load(image_id):
    return np.zeros((6, 8, 3), dtype=np.uint8)


def test_default_selection_paints_the_expected_map(workspace):
    _hand_made(workspace)
    samples = PseudoLabelSamples(workspace, 1, _load)
    assert len(samples) == 1  # the empty image has no selected row
    image, label = samples[0]
    assert image.shape == (6, 8, 3) and label.dtype == np.uint16
    expected = np.full((6, 8), IGNORE_INDEX, dtype=np.uint16)
    expected[0:4, 0:4] = 3
    expected[2:6, 2:6] = 5  # higher score paints last
    np.testing.assert_array_equal(label, expected)


@pytest.mark.parametrize("fallback, where", [("coarse", None), ("none", "gated")])
def test_coarse_fallback_or_custom_where_paints_coarse_masks(workspace, fallback, where):
    _hand_made(workspace, fallback=fallback)
    samples = PseudoLabelSamples(workspace, 1, _load, where=where)
    label = samples.label_map(0)
    expected = np.full((6, 8), IGNORE_INDEX, dtype=np.uint16)
    expected[0:4, 0:4] = 3
    expected[2:6, 2:6] = 5
    expected[5, :] = 7  # coarse fallback: score 1.0 x agreement 0.1 = 0.1 < 0.855
    expected[5, 2:6] = 5
    np.testing.assert_array_equal(label, expected)
    every = PseudoLabelSamples(workspace, 1, _load, where="class_id = ?", params=[1])
    np.testing.assert_array_equal(every.label_map(0), np.ones((6, 8), dtype=np.uint16))


def test_selection_guards(workspace):
    _hand_made(workspace)
    with pytest.raises(StorageError, match="not committed"):
        PseudoLabelSamples(workspace, 2, _load)
    with pytest.raises(StorageError, match="parse|read-only"):
        PseudoLabelSamples(workspace, 1, _load, where="true; DROP VIEW pseudo_labels")
    with pytest.raises(StorageError, match="outside the workspace"):
        PseudoLabelSamples(workspace, 1, _load,
                           where="image_id IN (SELECT content FROM read_text('/etc/hosts'))")
    samples = PseudoLabelSamples(workspace, 1, lambda _: np.zeros((3, 3, 3), np.uint8))
    with pytest.raises(StorageError, match="image is"):
        samples[0]


@pytest.mark.parametrize("fmt, big_class, bits", [("png", 7, 8), ("png", 300, 16),
                                                   ("tiff", 7, 16)])
def test_label_map_export_round_trips(workspace, tmp_path, fmt, big_class, bits):
    _hand_made(workspace, big_class)
    where = "gated"
    written = export_round(workspace, 1, str(tmp_path / "out"), fmt, where=where)
    assert [p.rsplit("/", 1)[-1] for p in written] == [f"empty.{fmt}", f"one.{fmt}"]
    expected = PseudoLabelSamples(workspace, 1, _load, where=where).label_map(0)
    stored = np.array(Image.open(tmp_path / "out" / "x" / f"one.{fmt}"))
    classes = json.loads((tmp_path / "out" / "classes.json").read_text())
    assert classes["bits"] == bits
    if bits == 8:
        assert stored.dtype == np.uint8
        stored = np.where(stored == 255, IGNORE_INDEX, stored.astype(np.uint16))
    np.testing.assert_array_equal(stored.astype(np.uint16), expected)
    empty = np.array(Image.open(tmp_path / "out" / "x" / f"empty.{fmt}"))
    assert (empty == classes["ignore"]).all()


@pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools")
def test_coco_export_round_trips(workspace, tmp_path):
    images = make_images(4, [3, 0, 2])
    workspace.write_shard(1, 0, "k", images)
    workspace.commit_round(1, 1)
    (path,) = export_round(workspace, 1, str(tmp_path), "coco", where="true")
    coco = json.loads(Path(path).read_text())
    assert [im["file_name"] for im in coco["images"]] == [im.image_id for im in images]
    expected = [(im, r) for im in images for r in im.regions]
    assert len(coco["annotations"]) == len(expected)
    for ann, (im, region) in zip(coco["annotations"], expected, strict=True):
        mask = mask_utils.decode({"size": ann["segmentation"]["size"],
                                  "counts": ann["segmentation"]["counts"].encode()})
        used = region.refined_mask if region.paints == "refined" else region.coarse_mask
        np.testing.assert_array_equal(mask.astype(bool), used)
        assert ann["category_id"] == region.class_id and ann["area"] == used.sum()
        assert coco["images"][ann["image_id"] - 1]["file_name"] == im.image_id


def test_export_command_writes_a_coco_file_pycocotools_loads(workspace, tmp_path, capsys):
    from pycocotools.coco import COCO

    from flows.cli import main

    _hand_made(workspace, fallback="coarse")
    out = tmp_path / "coco"
    assert main(["export", "--round", "1", "--format", "coco", "--out", str(out),
                 "--workspace", workspace.root]) == 0
    coco = COCO(str(out / "pseudo_labels_round=001.json"))
    assert sorted(coco.getCatIds()) == [3, 5, 7]  # the rows that paint, not the ungated one
    assert main(["export", "--round", "9", "--format", "png", "--out", str(out),
                 "--workspace", workspace.root]) == 2
    assert "round 9 is not a committed round" in capsys.readouterr().err
