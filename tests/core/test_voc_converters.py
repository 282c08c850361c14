"""The converters that turn packaged labelled images into refine-check's VOC folders
(`ovseg_core.data.voc_sets`; studies/data/*_voc.py download their inputs): each is fed small
hand-made files in the package's own format, and `read_voc_folder` (what `ovseg refine-check`
reads) must get back exactly the labels that went in."""

import gzip
import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from ovseg_core.data import voc_sets
from ovseg_core.data.voc_sets import stretch
from ovseg_core.selftrain.refine_check import read_voc_folder


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(h: int, w: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def nrrd_bytes(volume: np.ndarray) -> bytes:
    """A gzip NRRD file of a (Z, Y, X) int16 volume, as pyradiomics ships them."""
    z, y, x = volume.shape
    header = (f"NRRD0004\n# made by a test\ntype: short\ndimension: 3\nsizes: {x} {y} {z}\n"
              "endian: little\nencoding: gzip\n\n")
    return header.encode() + gzip.compress(volume.astype("<i2").tobytes())


def test_nrrd_reader_and_largest_slice_keep_axes_and_values():
    rng = np.random.default_rng(0)
    volume = rng.integers(-1000, 2000, size=(3, 5, 7)).astype(np.int16)
    label = np.zeros((3, 5, 7), np.int16)
    label[0, 1, 1] = 1
    label[2, 1:4, 2:6] = 1  # slice 2 has the most labelled voxels (12)
    assert np.array_equal(voc_sets.read_nrrd(nrrd_bytes(volume)), volume)
    image, mask = voc_sets.largest_slice(volume, voc_sets.read_nrrd(nrrd_bytes(label)))
    assert np.array_equal(image, volume[2])
    assert mask.sum() == 12 and mask.dtype == np.uint8


def test_scenetext_masks_become_class_one_exactly(tmp_path):
    files = {}
    masks = {}
    for k, word in enumerate(voc_sets.SCENETEXT_WORDS):
        mask = np.zeros((24, 32), np.uint8)
        mask[2 + k:10 + k, 3:20 - k] = 255  # white strokes on black, as shipped
        masks[word.removeprefix("scenetext_segmented_")] = mask > 0
        files[word + ".jpg"], files[word + "_mask.png"] = jpeg_bytes(24, 32), png_bytes(mask)
    pixels = voc_sets.write_scenetext_voc(files, tmp_path)
    names, samples = read_voc_folder(tmp_path)
    assert names == ["background", "text"]
    assert sorted(s.image_id for s in samples) == sorted(masks)
    for s in samples:
        assert np.array_equal(s.label == 1, masks[s.image_id]) and set(np.unique(s.label)) == {0, 1}
    assert pixels == sum(int(m.sum()) for m in masks.values())


def test_labelme_exports_keep_their_class_ids_and_void(tmp_path):
    label = np.array([[0, 15, 15], [255, 18, 0]], np.uint8)  # labelme's export: 255 = ignore
    names = "_background_\n" + "\n".join(f"class{i}" for i in range(1, 21)) + "\n"
    files = {voc_sets.LABELME_SEMANTIC + "data_dataset_voc/class_names.txt": names.encode()}
    for image_id in voc_sets.LABELME_VOC_IDS:
        files[f"{voc_sets.LABELME_SEMANTIC}data_annotated/{image_id}.jpg"] = jpeg_bytes(2, 3)
        files[f"{voc_sets.LABELME_SEMANTIC}data_dataset_voc/SegmentationClass/{image_id}.png"] = (
            png_bytes(label, "L"))
    voc_sets.write_labelme_voc(files.__getitem__, tmp_path)
    got_names, samples = read_voc_folder(tmp_path)
    assert got_names[0] == "_background_" and len(got_names) == 21
    assert len(samples) == 3 and all(np.array_equal(s.label, label) for s in samples)


def test_nuclei_wheel_becomes_a_voc_folder(tmp_path):
    """`write_nuclei_voc` turns stardist's 16-bit image and instance labels into a folder
    that refine-check reads: the contrast stretch maps the percentiles to 0 and 255, and every
    labelled instance becomes class 1."""
    rng = np.random.default_rng(0)
    image = rng.integers(100, 4000, (32, 48), dtype=np.uint16)
    instances = np.zeros((32, 48), np.uint16)
    instances[2:10, 3:12], instances[20:30, 30:40] = 7, 12
    wheel = tmp_path / "stardist.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for member, array in zip(voc_sets.NUCLEI_MEMBERS, (image, instances), strict=True):
            path = tmp_path / Path(member).name
            Image.fromarray(array).save(path)
            z.write(path, member)
    assert voc_sets.write_nuclei_voc(wheel, tmp_path / "voc") == 2
    names, samples = read_voc_folder(tmp_path / "voc")
    assert names == ["background", "nucleus"]
    (sample,) = samples
    assert sample.rgb.shape == (32, 48, 3)
    assert (sample.label == (instances > 0)).all()
    grey = sample.rgb[..., 0].astype(int)
    assert grey.min() <= 2 and grey.max() >= 253  # stretched (JPEG moves values a little)


def test_stretch_maps_the_percentiles_to_the_grey_range():
    image = np.arange(1000, dtype=np.uint16).reshape(25, 40) * 3
    grey = stretch(image, 1.0, 99.0)
    lo, hi = np.percentile(image, [1.0, 99.0])
    assert grey[image <= lo].max() == 0 and grey[image >= hi].min() == 255
    middle = image == 1500  # half way between the percentiles
    assert abs(int(grey[middle][0]) - 127) <= 1
