"""Read corrected annotations back from CVAT or Label Studio into the `human_labels` table.

Formats, recognised from the content:
- COCO JSON as CVAT's "COCO 1.0" export writes it (the `.json`, or the export's `.zip` with
  `annotations/instances_default.json`): `segmentation` as polygons (a list of flat
  [x0, y0, x1, y1, ...] lists, merged into one mask), as uncompressed RLE (`counts` a list of
  ints: CVAT's masks) or as compressed RLE (`counts` a string: what `ovseg review export`
  wrote). Categories are matched by name. Who/when: the file's `info.contributor` and
  `info.date_created`, when set (CVAT leaves them empty).
- Label Studio's JSON export: a list of tasks, each with `annotations` (cancelled ones
  skipped; of several, the latest `updated_at` counts) whose `result` holds `polygonlabels`
  (points in percent of `original_width` / `original_height`). Brush masks (`brushlabels`)
  are refused with a message: Label Studio's brush RLE is not read (see storage.review_export).
  Who/when: `completed_by` (an id, or the user's email when the export expands it) and
  `updated_at`. Tasks without an annotation were not reviewed and are left out.

Image ids: COCO `file_name` or the task's `data.ovseg_image_id`, else its `data.image` URL,
matched against the round's images: exactly, else by a unique path suffix or file name.
Every mask is checked against the image's size and the vocabulary, and the file is held to
the bounds of storage.review_limits before anything is rasterised; a file whose masks are the
round's pseudo-labels unchanged (storage.review_unedited) is refused unless `allow_unedited`.
Any problem is one StorageError naming the file, and nothing is stored.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import re
import zipfile
from urllib.parse import unquote, urlparse

import fsspec
import pyarrow as pa

from storage import human_labels, review_limits
from storage.errors import StorageError
from storage.hashing import dataset_manifest_hash
from storage.query import run_sql
from storage.records import utc_now
from storage.review_export import committed_round
from storage.review_unedited import unedited
from storage.rle import polygons_rle, rle_areas, uncompressed_rle
from storage.schema import HUMAN_LABEL_SCHEMA
from storage.workspace import Workspace

_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")  # Label Studio prefixes uploaded file names


def _read(path: str) -> tuple[bytes, object]:
    """(file bytes, parsed JSON) of a .json file or a CVAT export .zip, within the bounds of
    storage.review_limits."""
    try:
        with fsspec.open(path, "rb") as f:
            data = review_limits.read_bounded(f)
        text = review_limits.zip_member(data) if zipfile.is_zipfile(io.BytesIO(data)) else data
        return data, review_limits.parse_json(text)
    except (FileNotFoundError, IsADirectoryError):
        raise StorageError(f"{path}: no such file") from None
    except ValueError as exc:
        hint = ("; give a COCO JSON (CVAT 'COCO 1.0' export) or a Label Studio JSON export"
                if str(exc).startswith("not JSON") else "")
        raise StorageError(f"{path}: {exc}{hint}") from None


def detect_format(document) -> str | None:
    """"coco" for a COCO document, "label-studio" for a Label Studio task list, else None."""
    if isinstance(document, dict) and {"images", "annotations", "categories"} <= set(document):
        return "coco"
    if isinstance(document, list) and document and all(
            isinstance(t, dict) and "data" in t for t in document):
        return "label-studio"
    return None


def tool_of(document, fmt: str) -> str:
    """The tool that wrote a document of format `fmt`: a task list, or a COCO file whose
    `info.contributor` is "Label Studio" (its COCO export writes that), is Label Studio's;
    any other COCO file is taken as CVAT's (what ovseg's review export sends COCO to)."""
    if fmt == "label-studio":
        return "label-studio"
    info = document.get("info")
    contributor = info.get("contributor") if isinstance(info, dict) else None
    return "label-studio" if contributor == "Label Studio" else "cvat"


class _Images:
    """The round's images: id -> (height, width), and matching of names tools wrote."""

    def __init__(self, ws: Workspace, round: int, source: str):
        rows = run_sql(ws, "SELECT image_id, image_height, image_width FROM images "
                           "WHERE round = ? AND problem IS NULL", [int(round)]).to_pylist()
        self.sizes = {r["image_id"]: (r["image_height"], r["image_width"]) for r in rows}
        self.round, self.source = round, source
        self.listed: set[str] = set()
        """Images the file lists as reviewed (COCO images; annotated Label Studio tasks)."""

    def match(self, name: str) -> str:
        name = name.lstrip("/")
        if name in self.sizes:
            return name
        for candidates in ([i for i in self.sizes if i.endswith("/" + name)],
                           [i for i in self.sizes if posixpath.basename(i)
                            == posixpath.basename(name)],
                           [i for i in self.sizes if posixpath.basename(i)
                            == _UPLOAD_PREFIX.sub("", posixpath.basename(name))]):
            if len(candidates) == 1:
                return candidates[0]
        raise StorageError(f"{self.source}: image {name!r} is not an image of round "
                           f"{self.round} (or matches several)")

    def check_size(self, image_id: str, height: int, width: int) -> None:
        if self.sizes[image_id] != (int(height), int(width)):
            raise StorageError(f"{self.source}: {image_id} is {height}x{width} there, but "
                               f"{self.sizes[image_id][0]}x{self.sizes[image_id][1]} in round "
                               f"{self.round}")


def _class_id(name: str, classes: list[str], source: str) -> int:
    if name not in classes:
        shown = ", ".join(classes[:20]) + (" ..." if len(classes) > 20 else "")
        raise StorageError(f"{source}: unknown class {name!r}; the vocabulary is: {shown}")
    return classes.index(name)


def _label(image_id: str, h: int, w: int, rle: dict, class_name: str, classes: list[str],
           source: str, who, when) -> dict:
    counts = rle["counts"]
    return {"image_id": image_id, "class_name": class_name,
            "class_id": _class_id(class_name, classes, source), "image_height": h,
            "image_width": w, "rle": counts.decode("ascii") if isinstance(counts, bytes)
            else counts, "annotator": None if who in (None, "") else str(who),
            "annotated_at": when or None}


def _coco_mask(segmentation, h: int, w: int, budget: review_limits.VertexBudget
               ) -> dict | None:
    """The COCO RLE of an annotation's segmentation, checked first (storage.review_limits);
    None for no mask. ValueError naming what is wrong."""
    if isinstance(segmentation, list):
        return polygons_rle([review_limits.checked_polygon(p, h, w, budget)
                             for p in segmentation], h, w)
    if isinstance(segmentation, dict) and "counts" in segmentation:
        if list(segmentation.get("size", [])) != [h, w]:
            raise ValueError(f"mask size {segmentation.get('size')} is not {[h, w]}")
        if isinstance(segmentation["counts"], list):
            review_limits.check_runs(segmentation["counts"], h, w)
            return uncompressed_rle({"size": [h, w], "counts": segmentation["counts"]}, h, w)
        review_limits.check_compressed(segmentation["counts"], h, w)
        return {"size": [h, w], "counts": segmentation["counts"]}
    return None


def parse_coco(document: dict, images: _Images, classes: list[str], source: str) -> list[dict]:
    """Label dicts (image_id, class, rle counts, who/when) of a COCO document."""
    categories = {c["id"]: c["name"] for c in document["categories"]}
    info = document.get("info") or {}
    review_limits.check_count(len(document["annotations"]))
    review_limits.check_count(len(document["images"]), "images")
    budget, by_id = review_limits.VertexBudget(), {}
    for image in document["images"]:
        image_id = images.match(image["file_name"])
        images.check_size(image_id, image["height"], image["width"])
        by_id[image["id"]] = (image_id, int(image["height"]), int(image["width"]))
        images.listed.add(image_id)
    labels = []
    for ann in document["annotations"]:
        if ann["image_id"] not in by_id or ann["category_id"] not in categories:
            raise StorageError(f"{source}: annotation {ann.get('id')} names an image or a "
                               "category the file does not list")
        image_id, h, w = by_id[ann["image_id"]]
        try:
            rle = _coco_mask(ann.get("segmentation"), h, w, budget)
        except ValueError as exc:
            raise StorageError(f"{source}: annotation {ann.get('id')}: {exc}") from None
        if rle is None:
            raise StorageError(f"{source}: annotation {ann.get('id')} on {image_id} has no "
                               "mask (a box?); draw a polygon or a mask")
        labels.append(_label(image_id, h, w, rle, categories[ann["category_id"]], classes,
                             source, info.get("contributor"), info.get("date_created")))
    return labels


def _latest_annotation(task: dict) -> dict | None:
    done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    return max(done, key=lambda a: a.get("updated_at") or a.get("created_at") or "",
               default=None)


def _task_image(task: dict, images: _Images) -> str:
    data = task["data"]
    if data.get("ovseg_image_id"):
        return images.match(data["ovseg_image_id"])
    url = str(data.get("image", ""))
    parsed = urlparse(url)
    name = unquote(parsed.query.split("d=", 1)[1]) if "d=" in parsed.query \
        else unquote(parsed.path)
    return images.match(name)


def _percent_points(points, h: int, w: int) -> list[float]:
    """Label Studio's [[x%, y%], ...] as a flat pixel polygon; ValueError when not so shaped."""
    if not isinstance(points, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in p)
            for p in points):
        raise ValueError("polygon points are not a list of [x, y] percentages")
    return [c for x, y in points for c in (x * w / 100.0, y * h / 100.0)]


def parse_label_studio(tasks: list[dict], images: _Images, classes: list[str],
                       source: str) -> list[dict]:
    """Label dicts of a Label Studio JSON export (polygonlabels; see the module docstring)."""
    review_limits.check_count(len(tasks), "tasks")
    labels, budget = [], review_limits.VertexBudget()
    for task in tasks:
        annotation = _latest_annotation(task)
        if annotation is None:
            continue
        image_id = _task_image(task, images)
        images.listed.add(image_id)
        h, w = images.sizes[image_id]
        who = annotation.get("completed_by")
        who = who.get("email") or who.get("id") if isinstance(who, dict) else who
        for result in annotation.get("result") or []:
            kind = result.get("type")
            if kind != "polygonlabels":
                raise StorageError(
                    f"{source}: task {task.get('id')} has a {kind!r} result; ovseg reads "
                    "polygonlabels (the labeling config `ovseg review export` wrote)")
            images.check_size(image_id, result.get("original_height", h),
                              result.get("original_width", w))
            review_limits.check_count(len(labels) + 1)
            value = result["value"]
            flat = _percent_points(value["points"], h, w)
            try:
                rle = polygons_rle([review_limits.checked_polygon(flat, h, w, budget)], h, w)
            except ValueError as exc:
                raise StorageError(f"{source}: task {task.get('id')}: {exc}") from None
            if rle is None:
                continue  # fewer than three points enclose nothing
            labels.append(_label(image_id, h, w, rle, value["polygonlabels"][0], classes,
                                 source, who, annotation.get("updated_at")))
    return labels


def _table(labels: list[dict], round: int, tool: str, source: str, sha256: str) -> pa.Table:
    now, counter = utc_now(), {}
    for label in labels:
        label["label_id"] = counter[label["image_id"]] = counter.get(label["image_id"], -1) + 1
        label["area"] = int(rle_areas([label["rle"]], label["image_height"],
                                      label["image_width"])[0])
        label.update(round=int(round), tool=tool, source_file=source, source_sha256=sha256,
                     imported_at=now)
    return pa.Table.from_pylist(labels, schema=HUMAN_LABEL_SCHEMA)


def _recorded(ws: Workspace, sha256: str) -> bool:
    return any(r.stage == "review_import" and r.config.get("source_sha256") == sha256
               for r in ws.lineage())


def latest_round(ws: Workspace) -> int:
    """The newest committed round; StorageError when there is none."""
    committed = [r for r in ws.rounds() if ws.is_round_committed(r)]
    if not committed:
        raise StorageError(f"{ws.root} has no committed round to import reviews into")
    return committed[-1]


def _marked(document) -> bool:
    """Whether a COCO document carries the "ovseg" field ovseg's exports put on annotations."""
    return isinstance(document, dict) and any(
        isinstance(a, dict) and isinstance(a.get("ovseg"), dict)
        for a in document.get("annotations") or [])


def _refuse_unedited(ws: Workspace, round: int, labels: list[dict], document, path: str
                     ) -> None:
    if unedited(ws, round, labels, _marked(document)):
        images = len({label["image_id"] for label in labels})
        raise StorageError(
            f"{path}: its {len(labels)} mask(s) on {images} image(s) are round {round}'s "
            "pseudo-labels unchanged (ovseg's own export, not yet corrected?); stored as human "
            "labels, retraining would take them as checked by a person. Correct them in CVAT "
            "or Label Studio and import that tool's export, or pass --allow-unedited if a "
            "person checked these masks and changed nothing")


def import_review(workspace: Workspace | str, path: str, classes: list[str],
                  round: int | None = None, allow_unedited: bool = False) -> dict:
    """Store the corrected masks of `path` (see the module docstring) as human labels of
    `round` (default: the newest committed round); `classes` is the vocabulary.

    A file whose masks are the round's pseudo-labels unchanged (storage.review_unedited) is
    refused with a StorageError unless `allow_unedited`.

    Returns {"tool", "sha256", "round", "rows", "images", "new": bool, "without_masks"};
    `new` is False, and nothing is written, when a file with the same content was imported
    before. `without_masks`: image ids the file lists with no mask at all; they are not
    covered (their pseudo-labels stay): an empty image cannot be told from an unreviewed one.
    """
    started = utc_now()
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    data, document = _read(path)
    fmt = detect_format(document)
    if fmt is None:
        raise StorageError(f"{path}: neither a COCO JSON (CVAT 'COCO 1.0' export) nor a Label "
                           "Studio JSON export (a list of tasks)")
    round = latest_round(ws) if round is None else round
    committed_round(ws, round)
    sha256 = hashlib.sha256(data).hexdigest()
    images = _Images(ws, round, path)
    tool = tool_of(document, fmt)
    parse = parse_coco if fmt == "coco" else parse_label_studio
    try:
        labels = parse(document, images, classes, path)
    except ValueError as exc:
        raise StorageError(f"{path}: {exc}") from None
    except (KeyError, TypeError, IndexError, AttributeError, OverflowError) as exc:
        raise StorageError(f"{path}: not shaped as a {tool} {fmt} export ({type(exc).__name__}: "
                           f"{exc})") from None
    if not labels:
        raise StorageError(f"{path}: holds no annotated mask to import")
    if not allow_unedited:
        _refuse_unedited(ws, round, labels, document, path)
    covered = sorted({label["image_id"] for label in labels})
    new = human_labels.write(ws, _table(labels, round, tool, path, sha256), sha256)
    if not _recorded(ws, sha256):
        try:
            ws.write_lineage(human_labels.lineage_record(
                round, tool, path, sha256, len(labels), len(covered), started,
                dataset_manifest_hash(covered)))
        except StorageError:
            if not _recorded(ws, sha256):  # not a racing import of the same file
                raise
    return {"tool": tool, "sha256": sha256, "round": round, "rows": len(labels),
            "images": len(covered), "new": new,
            "without_masks": sorted(images.listed - set(covered))}
