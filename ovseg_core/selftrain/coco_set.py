"""A COCO annotation file as a refine-check set: one semantic label map per image.

Most labelled images come as COCO JSON (CVAT's and Label Studio's exports, COCO itself), with
instance annotations: a pixel no annotation covers is background, not unknown. So each image's
label map is class 0 "background" where nothing is annotated, category k (by ascending category
id) as class k + 1, and VOC's void (255) under crowd annotations. Where annotations overlap the
smaller one is drawn last and wins (an object on a table keeps its pixels). Images are looked up
by `file_name` next to the JSON, in `images/` beside it, or in `images/` one folder up (CVAT's
COCO export: `annotations/instances_default.json` and `images/`).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ovseg_core.errors import OvsegError

VOID = 255


def read_coco_file(path: str | Path, limit: int | None = None) -> tuple[list[str], Sequence]:
    """(class names, samples) of a COCO instance-annotation file; names[0] = "background". The
    first `limit` images by id (None: all), each read and painted when used."""
    from pycocotools.coco import COCO

    from ovseg_core.selftrain.refine_check import LazySamples

    path = Path(path)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        try:
            coco = COCO(str(path))
        except Exception as exc:
            raise OvsegError(f"cannot read COCO annotations {path}: {exc}") from exc
    ids = sorted(coco.getCatIds())
    if len(ids) >= VOID - 1:
        raise OvsegError(f"{path}: {len(ids)} categories; refine-check's uint8 labels hold 253")
    classes = {cid: k + 1 for k, cid in enumerate(ids)}
    names = ["background"] + [coco.loadCats(cid)[0]["name"] for cid in ids]
    infos = coco.loadImgs(sorted(coco.getImgIds()))[:limit]
    if not infos:
        raise OvsegError(f"{path} lists no images")
    files = [find_image(path, info["file_name"]) for info in infos]  # fail before SAM runs
    return names, LazySamples(list(zip(infos, files, strict=True)),
                              lambda item: coco_sample(coco, *item, classes))


def coco_sample(coco, info: dict, image_file: Path, classes: dict[int, int]):
    """The VocSample of one COCO image: its photo and `label_map`."""
    from ovseg_core.selftrain.refine_check import VocSample

    image = np.asarray(Image.open(image_file).convert("RGB"))
    if image.shape[:2] != (info["height"], info["width"]):
        raise OvsegError(f"{info['file_name']} is {image.shape[1]}x{image.shape[0]}, the "
                         f"annotations say {info['width']}x{info['height']}")
    image_id = str(Path(info["file_name"]).with_suffix("")).replace("/", "_")
    return VocSample(image_id, image, label_map(coco, info, classes))


def label_map(coco, info: dict, classes: dict[int, int]) -> np.ndarray:
    """(H, W) uint8 label map of one image: 0 background, classes[category_id], VOID under crowd
    annotations; larger annotations first, so smaller ones win where they overlap. Areas are
    counted on the run-length encodings and masks decoded one at a time, so memory does not
    grow with the number of annotations."""
    from pycocotools import mask as mask_utils

    label = np.zeros((info["height"], info["width"]), dtype=np.uint8)
    annotations = coco.loadAnns(coco.getAnnIds(imgIds=[info["id"]]))
    unknown = sorted({a["category_id"] for a in annotations} - set(classes))
    if unknown:
        raise OvsegError(f"{info['file_name']} has annotations of category ids {unknown}, which "
                         f"the file's categories do not list")
    rles = [coco.annToRLE(a) for a in annotations]
    areas = np.array([int(mask_utils.area(rle)) for rle in rles], dtype=np.int64)
    with warnings.catch_warnings():  # pycocotools' own numpy-2 DeprecationWarning
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="pycocotools")
        for k in np.argsort(-areas, kind="stable"):
            ann = annotations[k]
            mask = mask_utils.decode(rles[k]).astype(bool)
            label[mask] = VOID if ann.get("iscrowd", 0) else classes[ann["category_id"]]
    return label


def find_image(annotations: Path, file_name: str) -> Path:
    """The image `file_name` names, next to the annotation file or in an images/ folder."""
    here = annotations.parent
    for folder in (here, here / "images", here.parent / "images"):
        if (folder / file_name).is_file():
            return folder / file_name
    raise OvsegError(f"image {file_name} of {annotations} is in none of {here}, {here / 'images'}, "
                     f"{here.parent / 'images'}")
