"""Is an imported review file ovseg's own export, unchanged? Then it holds no correction.

Importing it would store pseudo-labels as human labels, and retraining would treat them as
masks a person checked. A file counts as unedited when every mask in it is one of the round's
pseudo-labels of the same image and class (pixel IoU >= SAME_IOU with the row's SAM mask or
coarse mask, or with that mask as storage.polygons outlines it: holes filled, specks dropped,
what a polygon export carries), each row matched once, and either it carries ovseg's marks
(the "ovseg" field ovseg's COCO exports put on every annotation) or it keeps every row that
paints of the images it covers (a deleted mask is a correction).
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils
from scipy import ndimage

from storage.polygons import MIN_PART_AREA
from storage.query import run_sql
from storage.rle import _quiet, decode_masks, encode_masks
from storage.workspace import Workspace

SAME_IOU = 0.99
"""Pixel IoU at which an imported mask counts as the pseudo-label itself (a polygon round
trip moves a few border pixels)."""


def _rle(counts: str, h: int, w: int) -> dict:
    return {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str)
            else counts}


def _outlined(counts: str, h: int, w: int) -> str:
    """The mask as a polygon export carries it: holes filled, parts of fewer than
    MIN_PART_AREA pixels dropped."""
    mask = ndimage.binary_fill_holes(decode_masks([counts], h, w)[0])
    parts, n = ndimage.label(mask)
    sizes = np.bincount(parts.ravel(), minlength=n + 1)
    keep = sizes >= MIN_PART_AREA
    keep[0] = False
    return encode_masks([keep[parts]], h, w)[0]


def _iou(a: str, b: str, h: int, w: int) -> float:
    with _quiet():
        return float(np.asarray(mask_utils.iou([_rle(a, h, w)], [_rle(b, h, w)], [0]))[0, 0])


def _candidates(row: dict) -> list[str]:
    return [c for c in (row["refined_rle"], row["coarse_rle"]) if c]


def _matches(label: dict, row: dict) -> bool:
    if label["class_id"] != row["class_id"]:
        return False
    h, w = label["image_height"], label["image_width"]
    for counts in _candidates(row):
        if counts == label["rle"]:
            return True
        iou = _iou(label["rle"], counts, h, w)
        if iou >= SAME_IOU or (iou >= 0.5 and _iou(label["rle"], _outlined(counts, h, w), h, w)
                               >= SAME_IOU):
            return True
    return False


def _image_unedited(labels: list[dict], rows: list[dict], marked: bool) -> bool:
    free = list(rows)
    for label in labels:
        match = next((r for r in free if _matches(label, r)), None)
        if match is None:
            return False
        free.remove(match)
    return marked or all(r["paints"] == "none" for r in free)


def unedited(ws: Workspace, round: int, labels: list[dict], marked: bool) -> bool:
    """True when `labels` (the importer's label dicts: image_id, class_id, rle, sizes) are the
    round's pseudo-labels unchanged (module docstring); `marked`: the file carries ovseg's
    marks."""
    ids = sorted({label["image_id"] for label in labels})
    rows = run_sql(ws, "SELECT image_id, class_id, paints, coarse_rle, refined_rle FROM "
                       "pseudo_labels WHERE round = $round AND list_contains($ids, image_id)",
                   {"round": int(round), "ids": ids}).to_pylist()
    by_image: dict[str, list[dict]] = {}
    for row in rows:
        by_image.setdefault(row["image_id"], []).append(row)
    imported: dict[str, list[dict]] = {}
    for label in labels:
        imported.setdefault(label["image_id"], []).append(label)
    return all(_image_unedited(imported[i], by_image.get(i, []), marked) for i in ids)
