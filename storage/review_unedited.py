"""Is an imported review file ovseg's own export, unchanged? Then it holds no correction.

Importing it would store pseudo-labels as human labels, and retraining would treat them as
masks a person checked. A file counts as unedited when every mask in it is one of the round's
pseudo-labels of the same image and class (pixel IoU >= SAME_IOU with the mask an export
carries for the row), or one part of it as storage.polygons outlines it (holes filled, one
polygon per 4-connected part, specks dropped: what a polygon export carries), each row or part
matched once and every part of a row matched, and either it carries ovseg's marks
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
    return {"size": [h, w], "counts": counts.encode("ascii")}


def _iou(a: str, b: str, h: int, w: int) -> float:
    with _quiet():
        return float(np.asarray(mask_utils.iou([_rle(a, h, w)], [_rle(b, h, w)], [0]))[0, 0])


class _Row:
    """One pseudo-label row of an image: the mask an export carries (the SAM mask when the row
    paints it, else the coarse mask: storage.samples) and what matched it so far."""

    def __init__(self, row: dict):
        self.class_id, self.paints = row["class_id"], row["paints"]
        self.counts = row["refined_rle"] if self.paints == "refined" else row["coarse_rle"]
        self.h, self.w = row["image_height"], row["image_width"]
        self.whole = False
        self.matched_parts: set[int] = set()
        self._parts: list[str] | None = None

    def parts(self) -> list[str]:
        """The mask's parts as a polygon export outlines them: holes filled, 4-connected
        parts of at least MIN_PART_AREA pixels, each as RLE counts."""
        if self._parts is None:
            mask = ndimage.binary_fill_holes(decode_masks([self.counts], self.h, self.w)[0])
            labels, n = ndimage.label(mask)
            sizes = np.bincount(labels.ravel(), minlength=n + 1)
            kept = [labels == i for i in range(1, n + 1) if sizes[i] >= MIN_PART_AREA]
            self._parts = encode_masks(kept, self.h, self.w) if kept else []
        return self._parts

    def free(self) -> bool:
        return not self.whole and not self.matched_parts

    def take(self, counts: str) -> bool:
        """Match an imported mask of this row's class to the row, or to one of its parts."""
        if self.whole:
            return False
        iou = 1.0 if counts == self.counts else _iou(counts, self.counts, self.h, self.w)
        if iou >= SAME_IOU and self.free():
            self.whole = True
            return True
        if iou == 0.0:
            return False
        for index, part in enumerate(self.parts()):
            if index not in self.matched_parts and _iou(counts, part, self.h, self.w) >= SAME_IOU:
                self.matched_parts.add(index)
                return True
        return False

    def complete(self, marked: bool) -> bool:
        """Matched whole or in all its parts; or unmatched and not needed: it paints nothing,
        or the file carries ovseg's marks, or it has no part a polygon export would carry."""
        if self.whole:
            return True
        if self.matched_parts:
            return len(self.matched_parts) == len(self.parts())
        return self.paints == "none" or marked or not self.parts()


def _image_unedited(labels: list[dict], rows: list[_Row], marked: bool) -> bool:
    for label in labels:
        if not any(r.take(label["rle"]) for r in rows if r.class_id == label["class_id"]):
            return False
    return all(r.complete(marked) for r in rows)


def unedited(ws: Workspace, round: int, labels: list[dict], marked: bool) -> bool:
    """True when `labels` (the importer's label dicts: image_id, class_id, rle) are the round's
    pseudo-labels unchanged (module docstring); `marked`: the file carries ovseg's marks."""
    ids = sorted({label["image_id"] for label in labels})
    rows = run_sql(ws, "SELECT image_id, class_id, paints, coarse_rle, refined_rle, "
                       "image_height, image_width FROM pseudo_labels WHERE round = $round "
                       "AND list_contains($ids, image_id) ORDER BY image_id, region_id",
                   {"round": int(round), "ids": ids}).to_pylist()
    by_image: dict[str, list[_Row]] = {}
    for row in rows:
        by_image.setdefault(row["image_id"], []).append(_Row(row))
    imported: dict[str, list[dict]] = {}
    for label in labels:
        imported.setdefault(label["image_id"], []).append(label)
    return all(_image_unedited(imported[i], by_image.get(i, []), marked) for i in ids)
