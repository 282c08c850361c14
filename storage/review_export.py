"""Send a round's doubtful images to people: files CVAT and Label Studio import for correction.

Which images: those with at least one row matching `where` (default DOUBTFUL_WHERE: gated
regions whose SAM mask is not trusted, whose SAM IoU is low, or whose class CLIP did not pick:
the model and CLIP disagree, which is what a person settles best), most doubtful rows first,
at most `limit`. Which masks: every row of such an image that paints (the retraining
selection, storage.samples' painting rule) plus its doubtful rows, so that the reviewer sees
the whole image: an imported review replaces all of that image's pseudo-labels in retraining.

CVAT (`tool="cvat"`), in `out_dir`:
- `annotations.json`: COCO 1.0 (what CVAT's "COCO 1.0" import reads; pycocotools loads it):
  category ids are class id + 1 (CVAT matches them to the task's labels by name), one image
  per reviewed image with `file_name` = its id (the path relative to the dataset root), one
  annotation per mask with `segmentation` as compressed RLE {"size": [H, W], "counts": str}
  and `ovseg`: {"region_id", "doubtful"} (whether the row matched the selection);
- `images/<image id>`: the images, hard-linked (copied across devices) from a local image root;
  zip this folder (paths inside kept) and upload it as the task's data;
- `images.txt`: one line per image: its local path, or its URL under a URL image root.
- `labels.json`: the vocabulary as CVAT's task "Raw" label constructor reads it.

Label Studio (`tool="label-studio"`), in `out_dir`:
- `tasks.json`: one task per image: `data.image` (the URL Label Studio loads; see
  `image_url`), `data.ovseg_image_id`, `data.ovseg_round`, and the masks as `predictions`
  (pre-annotations) of type `polygonlabels`, points in percent of the image width and height.
- `labeling_config.xml`: an Image with PolygonLabels of the vocabulary.
Polygons rather than brush masks: Label Studio's brush format is its own bit-packed RLE of an
RGBA image (not COCO's); its tag docs call `value.rle` only an "RLE-encoded image", the
encoding is defined by label-studio-converter's `brush.py` (not a dependency here), and a
mistake there fails silently in the editor. Polygons are plain JSON that Label Studio edits
and exports the same way. The cost is the outline: a polygon traces a part's exact pixel outline
(storage.polygons, not simplified): holes are filled, one polygon per connected part, and
specks of fewer than storage.polygons.MIN_PART_AREA pixels are left out (on the built-in
world's round 2, parts whose outline enclosed under 4 pixels were 99 of 150 polygons and 107
of 73,000 pixels, clutter in the editor). `ovseg review import` reads the polygons back.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import fsspec
import numpy as np

from storage.errors import StorageError
from storage.fsio import local_path
from storage.polygons import mask_polygons
from storage.query import check_condition, run_sql
from storage.rle import rle_areas, rle_boxes, rle_dict
from storage.samples import DEFAULT_WHERE, ImageSelection, select_images
from storage.workspace import Workspace

TOOLS = ("cvat", "label-studio")
DOUBTFUL_WHERE = "gated AND (NOT accepted OR sam_iou < 0.8 OR clip_class_id <> class_id)"
"""The default review selection: gated regions SAM did not trust, with a low SAM IoU, or whose
class CLIP did not pick."""
LOCAL_FILES = "/data/local-files/?d="
"""Label Studio's URL for a file under LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT."""
FROM_NAME, TO_NAME = "label", "image"


def committed_round(ws: Workspace, round: int) -> None:
    """StorageError unless `round` is committed in `ws` (naming the committed rounds); round 0
    is stage one, which makes no pseudo-labels, and the error says so."""
    if round == 0 or not ws.is_round_committed(round):
        known = ", ".join(str(r) for r in ws.rounds() if ws.is_round_committed(r)) or "none yet"
        if round == 0:
            raise StorageError("round 0 is stage one (supervised training on the labelled "
                               "source): it makes no pseudo-labels. Rounds with pseudo-labels "
                               f"in {ws.root}: {known}")
        raise StorageError(f"round {round} is not a committed round of {ws.root} (committed: "
                           f"{known})")


def store_vocabulary(ws: Workspace) -> list[str]:
    """The class names the store knows (pseudo and human labels), index = class id; ids never
    seen are named `class<id>`. The fallback when the run's vocabulary is not at hand."""
    rows = run_sql(ws, "SELECT class_id, any_value(class_name) AS name FROM (SELECT class_id, "
                       "class_name FROM pseudo_labels UNION ALL SELECT class_id, class_name "
                       "FROM human_labels) GROUP BY class_id").to_pylist()
    names = {r["class_id"]: r["name"] for r in rows}
    return [names.get(i, f"class{i}") for i in range(max(names, default=-1) + 1)]


def doubtful_images(ws: Workspace, round: int, where: str | None = None,
                    limit: int | None = None) -> list[str]:
    """Image ids of the round with a row matching `where`, most matching rows first."""
    query = (f"SELECT image_id, count(*) AS n FROM pseudo_labels WHERE round = ? "
             f"AND ({where or DOUBTFUL_WHERE}) GROUP BY image_id ORDER BY n DESC, image_id")
    if limit is not None:
        query += f" LIMIT {int(limit)}"
    return run_sql(ws, query, [int(round)]).column("image_id").to_pylist()


def review_selection(ws: Workspace, round: int, where: str | None = None,
                     limit: int | None = None) -> dict[str, ImageSelection]:
    """{image id: the masks shown for review}, see the module docstring."""
    ids = doubtful_images(ws, round, where, limit)
    if not ids:
        return {}
    rows = f"list_contains($ids, image_id) AND (({DEFAULT_WHERE}) OR ({where or DOUBTFUL_WHERE}))"
    return select_images(ws, round, rows, {"ids": ids})


def doubtful_regions(ws: Workspace, round: int, where: str | None = None) -> set[tuple]:
    """{(image id, region id)} of the round's rows matching `where` (default DOUBTFUL_WHERE)."""
    query = (f"SELECT image_id, region_id FROM pseudo_labels WHERE round = ? "
             f"AND ({where or DOUBTFUL_WHERE})")
    return {(r["image_id"], r["region_id"])
            for r in run_sql(ws, query, [int(round)]).to_pylist()}


def cvat_coco(round: int, selections: dict[str, ImageSelection], classes: list[str],
              doubtful: set[tuple] = frozenset()) -> dict:
    """The COCO 1.0 document of the review (see the module docstring); `doubtful` marks
    (image id, region id) pairs in each annotation's "ovseg" field (a key CVAT ignores; CVAT's
    own `attributes` must name attributes of the task's labels, so ovseg puts none there)."""
    coco = {"licenses": [{"name": "", "id": 0, "url": ""}],
            "info": {"contributor": "", "date_created": "", "url": "", "version": "",
                     "year": "", "description": f"ovseg round {round}: images to review"},
            "categories": [{"id": i + 1, "name": n, "supercategory": ""}
                           for i, n in enumerate(classes)],
            "images": [], "annotations": []}
    for number, (image_id, s) in enumerate(sorted(selections.items()), start=1):
        coco["images"].append({"id": number, "width": s.width, "height": s.height,
                               "file_name": image_id, "license": 0, "flickr_url": "",
                               "coco_url": "", "date_captured": 0})
        areas = rle_areas(s.rles, s.height, s.width)
        boxes = rle_boxes(s.rles, s.height, s.width)
        for i, row in enumerate(s.rows):
            coco["annotations"].append({
                "id": len(coco["annotations"]) + 1, "image_id": number,
                "category_id": int(row["class_id"]) + 1,
                "segmentation": rle_dict(s.rles[i], s.height, s.width),
                "area": int(areas[i]), "bbox": [float(v) for v in boxes[i]], "iscrowd": 0,
                "attributes": {"occluded": False},
                "ovseg": {"region_id": int(row["region_id"]),
                          "doubtful": (image_id, row["region_id"]) in doubtful}})
    return coco


def image_url(image_id: str, image_root: str | None) -> str:
    """What Label Studio loads for an image: `<prefix>/<image id>` under a URL image root
    (http://, https://, s3://, gs://), else Label Studio's local-files URL, which serves
    `<LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT>/<d>`. Label Studio (1.23) serves a file only
    from under a project's "Local files" storage, whose path must be a folder *below* the
    document root, so for a local image root R the document root is R's parent and `d` is
    `<name of R>/<image id>` (see `local_files_root`); without an image root, `d` is the id."""
    if not image_root:
        return LOCAL_FILES + quote(image_id)
    if local_path(image_root) is None:
        return f"{image_root.rstrip('/')}/{quote(image_id)}"
    folder = os.path.abspath(local_path(image_root))
    return LOCAL_FILES + quote(posixpath.join(os.path.basename(folder), image_id))


def local_files_root(image_root: str) -> str:
    """LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT for a local image root: its parent folder (the
    project's "Local files" storage then takes the image root itself; see `image_url`)."""
    return os.path.dirname(os.path.abspath(local_path(image_root)))


def label_studio_tasks(round: int, selections: dict[str, ImageSelection],
                       image_root: str | None) -> list[dict]:
    """Label Studio tasks with the masks as polygon pre-annotations (module docstring)."""
    tasks = []
    for image_id, s in sorted(selections.items()):
        results = []
        for row, mask in zip(s.rows, s.masks(), strict=True):
            for k, outline in enumerate(mask_polygons(mask, tolerance=0.0)):
                points = outline / np.array([s.width, s.height]) * 100.0
                results.append({
                    "id": f"r{row['region_id']}p{k}", "from_name": FROM_NAME,
                    "to_name": TO_NAME, "type": "polygonlabels", "original_width": s.width,
                    "original_height": s.height, "image_rotation": 0,
                    "value": {"points": np.round(points, 4).tolist(), "closed": True,
                              "polygonlabels": [row["class_name"]]}})
        tasks.append({"data": {"image": image_url(image_id, image_root),
                               "ovseg_image_id": image_id, "ovseg_round": int(round)},
                      "predictions": [{"model_version": f"ovseg-round-{int(round)}",
                                       "score": float(np.min(s.scores)), "result": results}]})
    return tasks


def labeling_config(classes: list[str]) -> str:
    """Label Studio's labeling config: the image and a PolygonLabels of the vocabulary."""
    labels = "\n".join(f"    <Label value={quoteattr(name)}/>" for name in classes)
    return (f'<View>\n  <Image name="{TO_NAME}" value="$image" zoom="true"/>\n'
            f'  <PolygonLabels name="{FROM_NAME}" toName="{TO_NAME}" strokeWidth="2" '
            f'opacity="0.4">\n{labels}\n  </PolygonLabels>\n</View>\n')


def _put_images(fs, out: str, ids: list[str], image_root: str | None) -> list[str]:
    """Link or copy local images to `<out>/images/`; the lines of images.txt."""
    if image_root is None:
        return ids
    if local_path(image_root) is None:
        return [f"{image_root.rstrip('/')}/{quote(i)}" for i in ids]
    lines = []
    for image_id in ids:
        source = os.path.join(image_root, image_id)
        if not os.path.isfile(source):
            raise StorageError(f"{source}: no such image (set --image-root to the folder the "
                               "round's image ids are relative to)")
        target = posixpath.join(out, "images", image_id)
        fs.makedirs(posixpath.dirname(target), exist_ok=True)
        if "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
            if not os.path.exists(target):
                try:
                    os.link(source, target)
                except OSError:
                    shutil.copyfile(source, target)
        else:
            fs.put_file(source, target)
        lines.append(os.path.abspath(source))
    return lines


def export_review(workspace: Workspace | str, round: int, out_dir: str, tool: str,
                  classes: list[str], where: str | None = None, limit: int | None = None,
                  image_root: str | None = None) -> dict:
    """Write the review files of `tool` for round `round` to `out_dir` (path or fsspec URL).

    `classes`: the vocabulary (index = class id); `image_root`: a local folder the image ids
    are relative to, or a URL prefix. Returns {"images": n, "masks": n, "files": [paths]};
    nothing is written when no image matches.
    """
    if tool not in TOOLS:
        raise StorageError(f"unknown review tool {tool!r}; choose one of {TOOLS}")
    if limit is not None and limit < 1:
        raise StorageError(f"--limit {limit}: give at least 1 image")
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    committed_round(ws, round)
    if where is not None:
        check_condition(ws, where)
    selections = review_selection(ws, round, where, limit)
    if not selections:
        return {"images": 0, "masks": 0, "files": []}
    names = {int(c): n for s in selections.values()
             for c, n in zip(s.class_ids.tolist(), s.class_names, strict=True)}
    for class_id, name in names.items():
        if class_id >= len(classes) or classes[class_id] != name:
            raise StorageError(f"class {class_id} is {name!r} in round {round}, but the "
                               f"vocabulary given has {len(classes)} classes without it there")
    fs, out = fsspec.core.url_to_fs(out_dir)
    fs.makedirs(out, exist_ok=True)
    files = []

    def put(name: str, text: str) -> None:
        files.append(posixpath.join(out, name))
        fs.pipe_file(files[-1], text.encode())

    if tool == "cvat":
        doubtful = doubtful_regions(ws, round, where)
        put("annotations.json", json.dumps(cvat_coco(round, selections, classes, doubtful)))
        lines = _put_images(fs, out, sorted(selections), image_root)
        put("images.txt", "".join(f"{line}\n" for line in lines))
        put("labels.json", json.dumps([{"name": n, "attributes": []} for n in classes]))
    else:
        put("tasks.json", json.dumps(label_studio_tasks(round, selections, image_root)))
        put("labeling_config.xml", labeling_config(classes))
    return {"images": len(selections), "masks": sum(len(s.rows) for s in selections.values()),
            "files": files}
