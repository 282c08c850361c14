"""Export a round's pseudo-labels for other tools: label maps (PNG / TIFF), COCO JSON, or
YOLO segmentation labels.

Label maps follow storage.samples' painting rule, one file per image of the round (images
without a selected row are all-ignore), at `<out_dir>/<image_id without extension>.<ext>`.
PNG is 8-bit when every class id is below 255 (ignore written as 255), else 16-bit (ignore
65535); TIFF is always 16-bit (ignore 65535). `classes.json` records names and the ignore value.

COCO: `<out_dir>/pseudo_labels_round=NNN.json` with one annotation per selected row:
segmentation as RLE {"size": [H, W], "counts": str} of the mask used, category_id = class id,
bbox XYWH of that mask, `score` (the painting score), and ovseg's own fields under "ovseg".

YOLO (Ultralytics' segmentation layout, what Autodistill writes; for training YOLO-seg models
on the pseudo-labels): `<out_dir>/labels/<image_id without extension>.txt` for every image of
the round, one line per polygon of each selected row's mask, `<class id> x1 y1 x2 y2 ...` with
X / width and Y / height (6 decimals; storage.polygons: one polygon per part of the mask, holes
filled, outlines simplified by up to SIMPLIFY_TOLERANCE pixels, specks left out); an image
without a selected row gets an empty file (background to YOLO). `<out_dir>/data.yaml` names the
classes by store class id (`nc` = largest id + 1; storage.review_export.store_vocabulary) and
sets `train` and `val` to `images`, relative to its own folder: the store keeps image ids, not
where the images are, so put (or link) the images at `<out_dir>/images/<image_id>`; Ultralytics
finds each image's labels by swapping its path's `/images/` for `/labels/`.
"""

from __future__ import annotations

import io
import json
import posixpath

import fsspec
import numpy as np
import yaml
from PIL import Image

from storage.errors import StorageError
from storage.formats import EXPORT_FORMATS
from storage.polygons import mask_polygons
from storage.query import check_condition, run_sql
from storage.review_export import committed_round, store_vocabulary
from storage.rle import rle_areas, rle_boxes, rle_dict
from storage.samples import ImageSelection, select_images
from storage.terms import IGNORE_INDEX
from storage.workspace import Workspace

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
        boxes = rle_boxes(selection.rles, h, w)
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


def _yolo_labels(selection: ImageSelection) -> str:
    """One image's YOLO label file: a line per polygon of each selected row's mask."""
    size = np.array([selection.width, selection.height], dtype=np.float64)
    lines = [f"{class_id} " + " ".join(f"{v:.6f}" for v in (polygon / size).ravel())
             for class_id, mask in zip(selection.class_ids.tolist(), selection.masks(),
                                       strict=True)
             for polygon in mask_polygons(mask)]
    return "".join(f"{line}\n" for line in lines)


def _export_yolo(fs, out: str, round: int, images: list[dict],
                 selections: dict[str, ImageSelection], classes: list[str]) -> list[str]:
    """Every image's label file and data.yaml (`classes`: names, index = class id); returns
    the label files' paths."""
    written = []
    for image in images:
        selection = selections.get(image["image_id"])
        path = posixpath.join(out, "labels", posixpath.splitext(image["image_id"])[0] + ".txt")
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
        fs.pipe_file(path, (_yolo_labels(selection) if selection else "").encode())
        written.append(path)
    data = {"train": "images", "val": "images", "nc": len(classes),
            "names": dict(enumerate(classes))}
    header = (f"# ovseg pseudo-labels, round {round}. Paths are relative to this file's folder:\n"
              "# put the round's images at images/<image id>; labels/ mirrors it.\n")
    fs.pipe_file(posixpath.join(out, "data.yaml"),
                 (header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)).encode())
    return written


def export_round(workspace: Workspace | str, round: int, out_dir: str, fmt: str = "png",
                 where: str | None = None, params: list | dict | None = None) -> list[str]:
    """Write the round's selected pseudo-labels (`where` as in PseudoLabelSamples) to
    `out_dir` (a local path or fsspec URL) as `fmt` in EXPORT_FORMATS (see the module docstring).

    Returns the paths written: label maps or YOLO label files (one per image of the round, not
    counting classes.json / data.yaml), or the one COCO JSON file.
    """
    if fmt not in EXPORT_FORMATS:
        raise StorageError(f"unknown export format {fmt!r}; choose one of {EXPORT_FORMATS}")
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    committed_round(ws, round)
    if where is not None:
        check_condition(ws, where, params)
    images = _images(ws, round)
    selections = select_images(ws, round, where, params)
    fs, out = fsspec.core.url_to_fs(out_dir)
    fs.makedirs(out, exist_ok=True)
    if fmt == "yolo":
        return _export_yolo(fs, out, round, images, selections, store_vocabulary(ws))
    if fmt != "coco":
        return _export_maps(fs, out, images, selections, fmt)
    path = posixpath.join(out, f"pseudo_labels_round={int(round):03d}.json")
    fs.pipe_file(path, json.dumps(_coco(round, images, selections)).encode())
    return [path]
