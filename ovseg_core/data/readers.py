"""Labelled dataset readers for the generic layout and the detectron2-style prepared benchmarks.

Every reader is a `LabeledDataset`: `class_names`, `image_ids` (paths relative to the root the
user gave), `len()`, `ds[i] -> (image uint8 (H,W,3), label uint16 (H,W))` with the dataset's
own ignore values mapped to IGNORE_INDEX, `read_image(id)` and `read_label(id)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ovseg_core.data.io import (
    LABEL_SUFFIXES,
    PNG_IGNORE,
    check_label,
    decode_ids,
    list_images,
    read_image,
    read_label_raw,
)
from ovseg_core.data.names import read_classes_txt, standard_class_names
from ovseg_core.errors import OvsegError

Decode = Callable[[np.ndarray], np.ndarray]
"""Stored label values (uint8/uint16 (H,W)) -> ovseg ids uint16 (H,W) with IGNORE_INDEX."""


def decode_generic(raw: np.ndarray) -> np.ndarray:
    """Generic layout: 8-bit maps use 255 as ignore, 16-bit maps 65535."""
    ignore = PNG_IGNORE if raw.dtype == np.uint8 else 65535
    return decode_ids(raw, (ignore,))


class LabeledDataset:
    """Images (and optionally label maps) of one split, read lazily. See the module docstring."""

    def __init__(self, root: Path, items: list[tuple[Path, Path | None]], class_names: list[str],
                 decode: Decode = decode_generic, kind: str = "generic"):
        self.root = Path(root)
        self.kind = kind
        self.class_names = list(class_names)
        self._decode = decode
        self.image_ids = [self._id(img) for img, _ in items]
        self._items = dict(zip(self.image_ids, items, strict=True))

    def _id(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    @property
    def has_labels(self) -> bool:
        """True when every image has a label map."""
        return all(lab is not None for _, lab in self._items.values())

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image_id = self.image_ids[index]
        image = self.read_image(image_id)
        return image, self._checked_label(image_id, image.shape[:2])

    def image_path(self, image_id: str) -> Path:
        return self._item(image_id)[0]

    def label_path(self, image_id: str) -> Path | None:
        return self._item(image_id)[1]

    def read_image(self, image_id: str) -> np.ndarray:
        """uint8 (H, W, 3) RGB."""
        return read_image(self.image_path(image_id))

    def read_label(self, image_id: str) -> np.ndarray:
        """uint16 (H, W) class ids with IGNORE_INDEX, checked against the image size and
        vocabulary."""
        with Image.open(self.image_path(image_id)) as img:
            width, height = img.size
        return self._checked_label(image_id, (height, width))

    def _item(self, image_id: str) -> tuple[Path, Path | None]:
        try:
            return self._items[image_id]
        except KeyError:
            raise OvsegError(f"no image {image_id!r} in {self.root}") from None

    def _checked_label(self, image_id: str, shape: tuple[int, int]) -> np.ndarray:
        image_path, label_path = self._item(image_id)
        if label_path is None:
            raise OvsegError(f"image {image_path} has no label map ({self.root} is unlabelled)")
        label = self._decode(read_label_raw(label_path))
        check_label(label, len(self.class_names), label_path, shape, image_path)
        return label


def pair_by_stem(label_dir: Path, image_dir: Path, recursive_images: bool = False,
                 label_suffixes: tuple[str, ...] = LABEL_SUFFIXES) -> list[tuple[Path, Path]]:
    """Pair each label map in `label_dir` with the image of the same stem in `image_dir`."""
    require_dir(label_dir, "label folder")
    require_dir(image_dir, "image folder")
    if recursive_images:
        images = {p.stem: p for p in sorted(image_dir.rglob("*"))
                  if p.suffix.lower() in (".jpg", ".jpeg", ".png")}
    else:
        images = {p.stem: p for p in list_images(image_dir)}
    labels = sorted(p for p in label_dir.iterdir() if p.suffix.lower() in label_suffixes)
    if not labels:
        raise OvsegError(f"no label maps ({'/'.join(label_suffixes)}) in {label_dir}")
    missing = [p.name for p in labels if p.stem not in images]
    if missing:
        raise OvsegError(
            f"{len(missing)} label maps in {label_dir} have no image in {image_dir}, "
            f"e.g. {', '.join(missing[:3])}"
        )
    return [(images[p.stem], p) for p in labels]


def pair_images_with_labels(image_dir: Path,
                            label_dir: Path | None) -> list[tuple[Path, Path | None]]:
    """Every image of `image_dir` with its label map `label_dir/<stem>.(png|tif|tiff)` (or None)."""
    require_dir(image_dir, "image folder")
    images = list_images(image_dir)
    if not images:
        raise OvsegError(f"no images in {image_dir}")
    if label_dir is None:
        return [(p, None) for p in images]
    labels = {p.stem: p for p in label_dir.iterdir() if p.suffix.lower() in LABEL_SUFFIXES}
    missing = [p.name for p in images if p.stem not in labels]
    if missing:
        raise OvsegError(
            f"{len(missing)} images in {image_dir} have no label map in {label_dir}, "
            f"e.g. {', '.join(missing[:3])}"
        )
    return [(p, labels[p.stem]) for p in images]


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise OvsegError(f"{what} not found: {path}")
    return path


def find_root(root: Path, candidates: tuple[str, ...], marker: str) -> Path:
    """The first of `root/<candidate>` that contains `marker`; OvsegError listing what was tried."""
    tried = []
    for sub in candidates:
        base = root / sub if sub else root
        tried.append(str(base / marker))
        if (base / marker).exists():
            return base
    raise OvsegError(f"dataset layout not found under {root}: looked for {', '.join(tried)}")


def open_generic(root: Path, split: str | None = None) -> LabeledDataset:
    """`[split/]images/`, optional `[split/]labels/`, `classes.txt` in the split folder or root.
    Without a split: `root/images`, else the validation split `root/val` when it exists."""
    root = Path(root)
    if split is None and not (root / "images").is_dir() and (root / "val" / "images").is_dir():
        split = "val"
    base = root / split if split else root
    require_dir(base, f"split {split!r}" if split else "dataset folder")
    classes = base / "classes.txt"
    if not classes.exists() and split:
        classes = root / "classes.txt"
    names = read_classes_txt(classes)
    label_dir = base / "labels"
    items = pair_images_with_labels(base / "images", label_dir if label_dir.is_dir() else None)
    return LabeledDataset(root, items, names, decode_generic, kind="generic")


def open_ade150(root: Path, split: str = "validation") -> LabeledDataset:
    """ADEChallengeData2016: `annotations_detectron2/` (255 ignore) or raw `annotations/`
    (0 ignore, -1)."""
    base = find_root(Path(root), ("", "ADEChallengeData2016"), "images")
    prepared = base / "annotations_detectron2" / split
    if prepared.is_dir():
        items, decode = pair_by_stem(prepared, base / "images" / split), _ignoring(255)
    else:
        items = pair_by_stem(base / "annotations" / split, base / "images" / split)
        decode = _ignoring(0, shift=1)
    return LabeledDataset(Path(root), items, standard_class_names("ade150"), decode, kind="ade150")


def open_ade847(root: Path, split: str = "validation") -> LabeledDataset:
    """ADE20K_2021_17_01: 16-bit `annotations_detectron2/<split>/*.tif` (ignore 65535)."""
    base = find_root(Path(root), ("", "ADE20K_2021_17_01"), "annotations_detectron2")
    image_dir = base / "images_detectron2" / split
    recursive = not image_dir.is_dir()
    if recursive:
        image_dir = base / "images" / "ADE" / split
    items = pair_by_stem(base / "annotations_detectron2" / split, image_dir,
                         recursive_images=recursive)
    return LabeledDataset(Path(root), items, standard_class_names("ade847"), _ignoring(65535),
                          kind="ade847")


def open_pascal_context(root: Path, split: str = "val", num_classes: int = 59) -> LabeledDataset:
    """VOC2010 `annotations_detectron2/pc59_<split>` (PNG, 255 ignore) / `pc459_<split>`
    (TIFF, 459 ignore)."""
    base = find_root(Path(root), ("", "VOC2010", "VOCdevkit/VOC2010"), "JPEGImages")
    kind = f"pc{num_classes}"
    items = pair_by_stem(base / "annotations_detectron2" / f"{kind}_{split}", base / "JPEGImages")
    decode = _ignoring(255) if num_classes == 59 else _ignoring(459, 65535)
    return LabeledDataset(Path(root), items, standard_class_names(kind), decode, kind=kind)


def open_voc20(root: Path, split: str = "val") -> LabeledDataset:
    """VOC2012 `annotations_detectron2/<split>` (0..19, 255 ignore), else `SegmentationClass`
    with `ImageSets/Segmentation/<split>.txt` (background 0 and border 255 -> ignore, ids -1)."""
    base = find_root(Path(root), ("", "VOC2012", "VOCdevkit/VOC2012"), "JPEGImages")
    prepared = base / "annotations_detectron2" / split
    if prepared.is_dir():
        items, decode = pair_by_stem(prepared, base / "JPEGImages"), _ignoring(255)
    else:
        listing = base / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not listing.exists():
            raise OvsegError(f"neither {prepared} nor {listing} exists")
        stems = [s.strip() for s in listing.read_text().split() if s.strip()]
        items = [(base / "JPEGImages" / f"{s}.jpg", base / "SegmentationClass" / f"{s}.png")
                 for s in stems]
        missing = [str(p) for pair in items for p in pair if not p.exists()]
        if missing:
            raise OvsegError(f"{len(missing)} files listed by {listing} are missing, "
                             f"e.g. {missing[0]}")
        decode = _ignoring(0, 255, shift=1)
    return LabeledDataset(Path(root), items, standard_class_names("voc20"), decode, kind="voc20")


def open_coco_stuff_maps(root: Path, split: str = "val2017") -> LabeledDataset:
    """COCO-Stuff 171 label PNGs (0..170, 255 ignore) in `stuffthingmaps_detectron2/<split>` or
    `annotations_detectron2/<split>`, images in `<split>/` or `images/<split>/`."""
    root = Path(root)
    for base in (root, root / "coco", root / "coco-stuff"):
        for labels in ("stuffthingmaps_detectron2", "annotations_detectron2"):
            label_dir = base / labels / split
            if label_dir.is_dir():
                image_dir = base / split if (base / split).is_dir() else base / "images" / split
                items = pair_by_stem(label_dir, image_dir)
                return LabeledDataset(root, items, standard_class_names("coco-stuff"),
                                      _ignoring(255), kind="coco-stuff")
    raise OvsegError(
        f"COCO-Stuff label maps not found under {root}: looked for "
        f"stuffthingmaps_detectron2/{split} and annotations_detectron2/{split}"
    )


@dataclass(frozen=True)
class IdDecoder:
    """Stored ids -> ovseg ids: `raw - shift`, values in `ignore` -> IGNORE_INDEX (picklable)."""

    ignore: tuple[int, ...]
    shift: int = 0

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return decode_ids(raw, self.ignore, self.shift)


def _ignoring(*values: int, shift: int = 0) -> IdDecoder:
    return IdDecoder(values, shift)
