"""Tiny fixtures in every supported layout, read back exactly."""

import json

import numpy as np
import pytest
from PIL import Image

from ovseg_core.constants import IGNORE_INDEX
from ovseg_core.data import UnlabeledImages, open_dataset, standard_class_names, write_label
from ovseg_core.errors import OvsegError

RNG = np.random.default_rng(0)


def save_image(path, h=6, w=5):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    Image.fromarray(img).save(path)  # PNG or JPEG by suffix
    return img


def save_raw_label(path, values, dtype):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values, dtype=dtype)).save(path)


def label_grid(values, h=6, w=5):
    return np.resize(np.asarray(values), (h, w))


def test_generic_8bit_png_ignore_255(tmp_path):
    (tmp_path / "classes.txt").write_text("sky\ngrass, lawn\nroad\n")
    img = save_image(tmp_path / "images" / "a.png")
    save_raw_label(tmp_path / "labels" / "a.png", label_grid([0, 1, 2, 255]), np.uint8)
    ds = open_dataset("generic", tmp_path)
    assert ds.class_names == ["sky", "grass, lawn", "road"]
    assert ds.image_ids == ["images/a.png"]
    image, label = ds[0]
    np.testing.assert_array_equal(image, img)
    assert label.dtype == np.uint16
    np.testing.assert_array_equal(label, label_grid([0, 1, 2, IGNORE_INDEX]))


def test_generic_16bit_tiff_with_split(tmp_path):
    names = [f"c{i}" for i in range(300)]
    (tmp_path / "classes.txt").write_text("\n".join(names) + "\n")
    save_image(tmp_path / "val" / "images" / "b.jpg")
    expected = label_grid([0, 299, 256, IGNORE_INDEX])
    save_raw_label(tmp_path / "val" / "labels" / "b.tif", expected, np.uint16)
    ds = open_dataset("generic", tmp_path, split="val")
    assert len(ds.class_names) == 300
    np.testing.assert_array_equal(ds.read_label("val/images/b.jpg"), expected)


def test_write_label_round_trip_png_and_tiff(tmp_path):
    small = label_grid([0, 3, IGNORE_INDEX])
    path = write_label(tmp_path / "x.jpg", small, num_classes=4)
    assert path.suffix == ".png"
    assert Image.open(path).mode == "L"
    big = label_grid([0, 400, 1000, IGNORE_INDEX])
    path16 = write_label(tmp_path / "y", big, num_classes=1001)
    assert path16.suffix == ".tif"
    (tmp_path / "classes.txt").write_text("".join(f"c{i}\n" for i in range(1001)))
    save_image(tmp_path / "images" / "y.png")
    np.testing.assert_array_equal(open_dataset("generic", tmp_path)
                                  ._decode(np.asarray(Image.open(path16))), big)
    np.testing.assert_array_equal(np.asarray(Image.open(path)),
                                  np.where(small == IGNORE_INDEX, 255, small))


def test_ade150_raw_annotations_shift_and_ignore_zero(tmp_path):
    base = tmp_path / "ADEChallengeData2016"
    save_image(base / "images" / "validation" / "ADE_val_00000001.jpg")
    save_raw_label(base / "annotations" / "validation" / "ADE_val_00000001.png",
                   label_grid([0, 1, 150, 7]), np.uint8)
    ds = open_dataset("ade150", tmp_path, split="val")
    assert len(ds.class_names) == 150 and ds.class_names[0] == "wall"
    np.testing.assert_array_equal(ds[0][1], label_grid([IGNORE_INDEX, 0, 149, 6]))


def test_ade150_prepared_annotations_255_ignore(tmp_path):
    save_image(tmp_path / "images" / "validation" / "x.jpg")
    save_raw_label(tmp_path / "annotations_detectron2" / "validation" / "x.png",
                   label_grid([0, 149, 255]), np.uint8)
    ds = open_dataset("ade150", tmp_path)
    np.testing.assert_array_equal(ds[0][1], label_grid([0, 149, IGNORE_INDEX]))


def test_ade847_16bit_tiff_nested_images(tmp_path):
    base = tmp_path / "ADE20K_2021_17_01"
    save_image(base / "images" / "ADE" / "validation" / "cultural" / "ADE_frame_1.jpg")
    expected = label_grid([0, 846, 300, IGNORE_INDEX])
    save_raw_label(base / "annotations_detectron2" / "validation" / "ADE_frame_1.tif", expected,
                   np.uint16)
    ds = open_dataset("ade847", tmp_path)
    assert len(ds.class_names) == 847
    assert ds.image_ids == ["ADE20K_2021_17_01/images/ADE/validation/cultural/ADE_frame_1.jpg"]
    np.testing.assert_array_equal(ds[0][1], expected)


def test_pascal_context_59_and_459(tmp_path):
    base = tmp_path / "VOCdevkit" / "VOC2010"
    save_image(base / "JPEGImages" / "2008_000002.jpg")
    save_raw_label(base / "annotations_detectron2" / "pc59_val" / "2008_000002.png",
                   label_grid([0, 58, 255]), np.uint8)
    save_raw_label(base / "annotations_detectron2" / "pc459_val" / "2008_000002.tif",
                   label_grid([0, 458, 459, 65535]), np.uint16)
    pc59 = open_dataset("pc59", tmp_path)
    assert len(pc59.class_names) == 59
    np.testing.assert_array_equal(pc59[0][1], label_grid([0, 58, IGNORE_INDEX]))
    pc459 = open_dataset("pc459", tmp_path)
    assert len(pc459.class_names) == 459
    np.testing.assert_array_equal(pc459[0][1], label_grid([0, 458, IGNORE_INDEX, IGNORE_INDEX]))


def test_voc20_raw_palette_background_excluded(tmp_path):
    base = tmp_path / "VOC2012"
    save_image(base / "JPEGImages" / "2007_000033.jpg")
    (base / "ImageSets" / "Segmentation").mkdir(parents=True)
    (base / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000033\n")
    pal = Image.fromarray(label_grid([0, 1, 20, 255]).astype(np.uint8), mode="P")
    pal.putpalette([v for i in range(256) for v in (i, 0, 255 - i)])
    (base / "SegmentationClass").mkdir()
    pal.save(base / "SegmentationClass" / "2007_000033.png")
    ds = open_dataset("voc20", tmp_path)
    assert ds.class_names[0] == "aeroplane" and len(ds.class_names) == 20
    np.testing.assert_array_equal(ds[0][1], label_grid([IGNORE_INDEX, 0, 19, IGNORE_INDEX]))


def test_voc20_prepared(tmp_path):
    base = tmp_path / "VOCdevkit" / "VOC2012"
    save_image(base / "JPEGImages" / "a.jpg")
    save_raw_label(base / "annotations_detectron2" / "val" / "a.png", label_grid([0, 19, 255]),
                   np.uint8)
    np.testing.assert_array_equal(open_dataset("voc20", tmp_path)[0][1],
                                  label_grid([0, 19, IGNORE_INDEX]))


def test_coco_stuff_png_maps(tmp_path):
    base = tmp_path / "coco"
    save_image(base / "val2017" / "000000000139.jpg")
    save_raw_label(base / "stuffthingmaps_detectron2" / "val2017" / "000000000139.png",
                   label_grid([0, 170, 255]), np.uint8)
    ds = open_dataset("coco-stuff", tmp_path)
    assert len(ds.class_names) == 171 and ds.class_names == standard_class_names("coco-stuff")
    np.testing.assert_array_equal(ds[0][1], label_grid([0, 170, IGNORE_INDEX]))


def test_coco_stuff_json_with_pycocotools(tmp_path):
    save_image(tmp_path / "images" / "val2017" / "1.jpg", h=10, w=10)
    image = {"id": 1, "file_name": "1.jpg", "height": 10, "width": 10}
    box = lambda x0, y0, x1, y1: [[x0, y0, x1, y0, x1, y1, x0, y1]]  # noqa: E731
    stuff = {"images": [image],
             "categories": [{"id": 92, "name": "banner"}, {"id": 183, "name": "other"}],
             "annotations": [
                 {"id": 1, "image_id": 1, "category_id": 92, "segmentation": box(0, 0, 10, 5),
                  "iscrowd": 0, "area": 50, "bbox": [0, 0, 10, 5]},
                 {"id": 2, "image_id": 1, "category_id": 183, "segmentation": box(0, 5, 10, 10),
                  "iscrowd": 0, "area": 50, "bbox": [0, 5, 10, 5]},
             ]}
    things = {"images": [image], "categories": [{"id": 1, "name": "person"}],
              "annotations": [{"id": 3, "image_id": 1, "category_id": 1,
                               "segmentation": box(0, 6, 4, 10),
                               "iscrowd": 0, "area": 16, "bbox": [0, 6, 4, 4]}]}
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "stuff_val2017.json").write_text(json.dumps(stuff))
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(things))
    ds = open_dataset("coco-stuff", tmp_path, split="val")
    assert ds.class_names == ["person", "banner"]
    _, label = ds[0]
    assert label.shape == (10, 10)
    assert (label[:5] == 1).all()                      # banner
    assert (label[6:, :4] == 0).all()                  # person painted over "other"
    assert (label[6:, 5:] == IGNORE_INDEX).all()       # "other" -> ignore


def test_errors_name_the_file(tmp_path):
    (tmp_path / "classes.txt").write_text("a\nb\n")
    save_image(tmp_path / "images" / "x.png")
    save_raw_label(tmp_path / "labels" / "x.png", label_grid([0, 1, 5]), np.uint8)
    ds = open_dataset("generic", tmp_path)
    with pytest.raises(OvsegError,
                       match=r"x\.png holds class ids outside the vocabulary of 2 classes: 5"):
        ds[0]
    save_raw_label(tmp_path / "labels" / "x.png", np.zeros((3, 3)), np.uint8)
    with pytest.raises(OvsegError, match=r"x\.png is 3x3 .* but image .*x\.png is 6x5"):
        ds[0]
    (tmp_path / "images" / "x.png").write_bytes(b"not an image")
    with pytest.raises(OvsegError, match=r"cannot read image .*x\.png"):
        ds[0]
    save_image(tmp_path / "images" / "y.png")
    with pytest.raises(OvsegError, match=r"have no label map .*y\.png"):
        open_dataset("generic", tmp_path)
    with pytest.raises(OvsegError, match="classes.txt"):
        open_dataset("generic", tmp_path / "images")
    with pytest.raises(OvsegError, match="layout not found"):
        open_dataset("pc59", tmp_path)
    with pytest.raises(OvsegError, match="unknown dataset kind"):
        open_dataset("cityscapes", tmp_path)


def test_unlabeled_images_skip_and_report_unreadable(tmp_path):
    save_image(tmp_path / "a.jpg")
    save_image(tmp_path / "sub" / "b.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8garbage")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "moved-away.jpg")
    (tmp_path / "link.png").symlink_to(tmp_path / "sub" / "b.png")
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "x.png").write_bytes(b"\0")
    with pytest.warns(UserWarning, match="skipped 3 files that are not readable images"):
        images = UnlabeledImages(tmp_path)
    assert images.image_ids == ["a.jpg", "link.png", "sub/b.png"]
    reasons = dict(images.skipped)
    assert sorted(reasons) == ["broken.jpg", "gone.jpg", "notes.txt"]
    assert reasons["gone.jpg"].startswith("dangling symbolic link (to ")
    assert "moved-away.jpg, which does not exist" in reasons["gone.jpg"]
    assert reasons["notes.txt"].startswith("not an image file type ovseg reads (.txt;")
    assert images.read("sub/b.png").shape == (6, 5, 3)
