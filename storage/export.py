"""Export a round's pseudo-labels for other tools: label maps (PNG / TIFF) or COCO JSON.

Label maps follow storage.samples' painting rule, one file per image of the round (images
without a selected row are all-ignore), at `<out_dir>/<image_id without extension>.<ext>`.
PNG is 8-bit when every class id is below 255 (ignore written as 255), else 16-bit (ignore
65535); TIFF is always 16-bit (ignore 65535). `classes.json` records names and the ignore value.

COCO: `<out_dir>/pseudo_labels_round=NNN.json` with one annotation per selected row:
segmentation as RLE {"size": [H, W], "counts": str} of the mask used, category_id = class id,
bbox XYWH of that mask, `score` (the painting score), and ovseg's own fields under "ovseg".
"""

from __future__ import annotations

import io
import json
import posixpath

import fsspec
import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from storage.errors import StorageError
from storage.query import run_sql
from storage.rle import rle_areas, rle_dict
from storage.samples import ImageSelection, select_images
from storage.schema import IGNORE_INDEX
from storage.workspace import Workspace

FORMATS = ("png", "tiff", "coco")
PNG8_IGNORE = 255


def _encode_map(label: np.ndarray, fmt: str, eight_bit: bool) -> bytes:
    buffer = io.BytesIO()
    if eight_bit:
        small = np.where(label == IGNORE_INDEX, PNG8_IGNORE, label).astype(np.uint8)
        Image.fromarray(small, mode="L").save(buffer, format="PNG")
    else:
        image = Image.fromarray(label.astype(np.uint16))  # mode I;16
        image.save(buffer, format="PNG" if fmt == "png" else "TIFF")
    return buffer.getvalue()


def _images(ws: Workspace, round: int) -> list[dict]:
    return run_sql(ws, "SELECT image_id, image_height, image_width FROM images "
                       "WHERE round = ? ORDER BY image_id", [int(round)]).to_pylist()


def _export_maps(fs, out: str, images: list[dict], selections: dict[str, ImageSelection],
                 fmt: str) -> list[str]:
    names = {n for s in selections.values() for n in zip(s.class_ids.tolist(), s.class_names,
                                                         strict=True)}
    eight_bit = fmt == "png" and all(cid < PNG8_IGNORE for cid, _ in names)
    ignore = PNG8_IGNORE if eight_bit else IGNORE_INDEX
    written = []
    for image in images:
        selection = selections.get(image["image_id"])
        label = selection.label_map() if selection else np.full(
            (image["image_height"], image["image_width"]), IGNORE_INDEX, dtype=np.uint16)
        path = posixpath.join(out, posixpath.splitext(image["image_id"])[0] + f".{fmt}")
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
        fs.pipe_file(path, _encode_map(label, fmt, eight_bit))
        written.append(path)
    classes = {"classes": {str(cid): name for cid, name in sorted(names)}, "ignore": ignore,
               "bits": 8 if eight_bit else 16}
    fs.pipe_file(posixpath.join(out, "classes.json"), json.dumps(classes, indent=1).encode())
    return written


def _coco(round: int, images: list[dict], selections: dict[str, ImageSelection]) -> dict:
    coco = {"info": {"description": f"ovseg pseudo-labels, round {round}"}, "images": [],
            "annotations": [], "categories": []}
    categories = {}
    for image_number, image in enumerate(images, start=1):
        h, w = image["image_height"], image["image_width"]
        coco["images"].append({"id": image_number, "file_name": image["image_id"],
                               "height": h, "width": w})
        selection = selections.get(image["image_id"])
        if selection is None:
            continue
        areas = rle_areas(selection.rles, h, w)
        boxes = mask_utils.toBbox([{"size": [h, w], "counts": c.encode()} for c in selection.rles])
        for i, row in enumerate(selection.rows):
            categories[row["class_id"]] = row["class_name"]
            coco["annotations"].append({
                "id": len(coco["annotations"]) + 1, "image_id": image_number,
                "category_id": int(row["class_id"]),
                "segmentation": rle_dict(selection.rles[i], h, w),
                "area": int(areas[i]), "bbox": [float(v) for v in boxes[i]], "iscrowd": 0,
                "score": float(selection.scores[i]),
                "ovseg": {k: row[k] for k in ("region_id", "confidence", "sam_iou",
                                              "agreement_iou", "gated", "accepted",
                                              "paints")},
            })
    coco["categories"] = [{"id": int(k), "name": v} for k, v in sorted(categories.items())]
    return coco


def export_round(workspace: Workspace | str, round: int, out_dir: str, fmt: str = "png",
                 where: str | None = None, params: list | dict | None = None) -> list[str]:
    """Write the round's selected pseudo-labels (`where` as in PseudoLabelSamples) to
    `out_dir` (a local path or fsspec URL) as `fmt` in ("png", "tiff", "coco").

    Returns the paths written (label maps, or the one COCO JSON file).
    """
    if fmt not in FORMATS:
        raise StorageError(f"unknown export format {fmt!r}; choose one of {FORMATS}")
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    if not ws.is_round_committed(round):
        raise StorageError(f"round {round} is not committed in {ws.root}")
    images = _images(ws, round)
    selections = select_images(ws, round, where, params)
    fs, out = fsspec.core.url_to_fs(out_dir)
    fs.makedirs(out, exist_ok=True)
    if fmt != "coco":
        return _export_maps(fs, out, images, selections, fmt)
    path = posixpath.join(out, f"pseudo_labels_round={int(round):03d}.json")
    fs.pipe_file(path, json.dumps(_coco(round, images, selections)).encode())
    return [path]
