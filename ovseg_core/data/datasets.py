"""`open_dataset(kind, root, split)`: one entry point for every labelled layout."""

from __future__ import annotations

from pathlib import Path

from ovseg_core.constants import DATASET_KINDS
from ovseg_core.data.coco_json import open_coco_json
from ovseg_core.data.readers import (
    LabeledDataset,
    open_ade150,
    open_ade847,
    open_coco_stuff_maps,
    open_generic,
    open_pascal_context,
    open_voc20,
)
from ovseg_core.errors import OvsegError

_SPLIT_ALIASES = {
    "ade150": {"val": "validation", "train": "training", None: "validation"},
    "ade847": {"val": "validation", "train": "training", None: "validation"},
    "coco-stuff": {"val": "val2017", "train": "train2017", None: "val2017"},
    "pc59": {None: "val"},
    "pc459": {None: "val"},
    "voc20": {None: "val"},
}


def open_dataset(kind: str, root: str | Path, split: str | None = None) -> LabeledDataset:
    """Open a labelled dataset of `kind` (one of DATASET_KINDS) at `root`.

    `split` defaults to the benchmark's validation split ("validation", "val2017", "val");
    "val" / "train" are accepted for every kind. For "generic" it names a sub-folder
    (`root/<split>/images`) or, when None, `root/images` (`root/val/images` when there is no
    `root/images`).
    """
    if kind not in DATASET_KINDS:
        raise OvsegError(f"unknown dataset kind {kind!r}; choose from {', '.join(DATASET_KINDS)}")
    root = Path(root)
    if not root.exists():
        raise OvsegError(f"dataset root not found: {root}")
    split = _SPLIT_ALIASES.get(kind, {}).get(split, split)
    if kind == "generic":
        return open_generic(root, split)
    if kind == "ade150":
        return open_ade150(root, split)
    if kind == "ade847":
        return open_ade847(root, split)
    if kind in ("pc59", "pc459"):
        return open_pascal_context(root, split, int(kind[2:]))
    if kind == "voc20":
        return open_voc20(root, split)
    try:
        return open_coco_stuff_maps(root, split)
    except OvsegError:
        from_json = open_coco_json(root, split)
        if from_json is None:
            raise
        return from_json
