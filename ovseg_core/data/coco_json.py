"""COCO-Stuff from COCO JSON annotations, rasterised with pycocotools.

Layout: `annotations/stuff_<split>.json` (and, when present, `annotations/instances_<split>.json`
for the thing classes), images in `<split>/` or `images/<split>/`. The vocabulary is the JSON
categories sorted by id, minus the stuff file's "other" catch-all (its pixels are ignored).
Stuff segments are painted first, then thing instances; crowd regions and unannotated pixels are
ignore.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np

from ovseg_core.constants import IGNORE_INDEX
from ovseg_core.data.io import check_label
from ovseg_core.data.readers import LabeledDataset
from ovseg_core.errors import OvsegError

OTHER_NAME = "other"


class CocoJsonDataset(LabeledDataset):
    """COCO-Stuff whose label maps are painted from JSON annotations on read."""

    def __init__(self, root: Path, json_paths: list[Path], image_dir: Path):
        from pycocotools.coco import COCO

        self._cocos = []
        for path in json_paths:
            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
                try:
                    self._cocos.append(COCO(str(path)))
                except Exception as exc:
                    raise OvsegError(f"cannot read COCO annotations {path}: {exc}") from exc
        categories = {}
        for coco in self._cocos:
            for cat in coco.loadCats(coco.getCatIds()):
                categories[cat["id"]] = cat["name"]
        kept = [cid for cid in sorted(categories) if categories[cid] != OTHER_NAME]
        self._contiguous = {cid: i for i, cid in enumerate(kept)}
        first = self._cocos[0]
        items = []
        self._coco_ids = {}
        for img in first.loadImgs(sorted(first.getImgIds())):
            path = image_dir / img["file_name"]
            if not path.exists():
                raise OvsegError(f"image {path} listed in {json_paths[0]} is missing")
            items.append((path, None))
            self._coco_ids[path] = (img["id"], img["height"], img["width"])
        super().__init__(root, items, [categories[c] for c in kept], kind="coco-stuff")

    @property
    def has_labels(self) -> bool:
        return True

    def _checked_label(self, image_id: str, shape: tuple[int, int]) -> np.ndarray:
        image_path, _ = self._item(image_id)
        coco_id, height, width = self._coco_ids[image_path]
        label = np.full((height, width), IGNORE_INDEX, dtype=np.uint16)
        for coco in self._cocos:
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=[coco_id])):
                with warnings.catch_warnings():  # pycocotools' numpy-2 DeprecationWarning
                    warnings.simplefilter("ignore", DeprecationWarning)
                    mask = coco.annToMask(ann).astype(bool)
                if ann.get("iscrowd", 0):
                    label[mask] = IGNORE_INDEX
                elif ann["category_id"] in self._contiguous:
                    label[mask] = self._contiguous[ann["category_id"]]
                else:
                    label[mask] = IGNORE_INDEX
        check_label(label, len(self.class_names), image_path, shape, image_path)
        return label


def open_coco_json(root: Path, split: str = "val2017") -> CocoJsonDataset | None:
    """The JSON-annotated COCO-Stuff split under `root`, or None when there is no stuff JSON."""
    root = Path(root)
    for base in (root, root / "coco", root / "coco-stuff"):
        stuff = base / "annotations" / f"stuff_{split}.json"
        if stuff.exists():
            things = base / "annotations" / f"instances_{split}.json"
            jsons = [stuff] + ([things] if things.exists() else [])
            image_dir = base / split if (base / split).is_dir() else base / "images" / split
            if not image_dir.is_dir():
                raise OvsegError(f"image folder not found: {base / split} or {image_dir}")
            return CocoJsonDataset(root, jsons, image_dir)
    return None
