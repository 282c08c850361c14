"""A plain folder of unlabelled images: the self-training target.

Every file under the folder is either an image or skipped with its reason (`skipped`, plus a
warning), never dropped silently: unreadable images, dangling symbolic links, files of a type
that is not an image, and anything that is not a regular file. Hidden files and folders (a
name starting with ".") are left out.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from ovseg_core.data.io import IMAGE_SUFFIXES, read_image
from ovseg_core.errors import OvsegError


class UnlabeledImages:
    """Images under `root` (a folder, searched recursively, or one image file).

    `image_ids` are paths relative to `root` (the file name for a single file); images whose
    header cannot be decoded are left out of `image_ids` and listed in `skipped` as
    `(image_id, reason)` (and warned about, unless `warn=False`: the caller reports them).
    No readable image at all is an OvsegError naming the unreadable ones.
    """

    def __init__(self, root: str | Path, recursive: bool = True, warn: bool = True):
        self.root = Path(root)
        self.warn = warn
        self.skipped: list[tuple[str, str]] = []
        if self.root.is_file():
            files, self._base = [self.root], self.root.parent
        elif self.root.is_dir():
            pattern = self.root.rglob("*") if recursive else self.root.iterdir()
            files = sorted(p for p in pattern if not p.is_dir() and not any(
                part.startswith(".") for part in p.relative_to(self.root).parts))
            self._base = self.root
        else:
            raise OvsegError(f"image folder not found: {self.root}")
        self.image_ids: list[str] = []
        for path in files:
            image_id = path.relative_to(self._base).as_posix()
            reason = _file_problem(path)
            if reason:
                self.skipped.append((image_id, reason))
            else:
                self.image_ids.append(image_id)
        if self.skipped and warn:
            warnings.warn(_skip_message(self.root, self.skipped), stacklevel=2)
        if not self.image_ids:
            raise OvsegError(f"no readable images in {self.root}" + (
                f" ({_skip_message(self.root, self.skipped)})" if self.skipped else ""))

    def __len__(self) -> int:
        return len(self.image_ids)

    def path(self, image_id: str) -> Path:
        return self._base / image_id

    def read(self, image_id: str) -> np.ndarray:
        """uint8 (H, W, 3) RGB; OvsegError naming the file if it cannot be decoded."""
        return read_image(self.path(image_id))

    def iter_images(self):
        """Yield `(image_id, image)`; images that fail to decode now are added to `skipped` (and
        warned about unless `warn` is False)."""
        for image_id in self.image_ids:
            try:
                image = self.read(image_id)
            except OvsegError as exc:
                self.skipped.append((image_id, str(exc)))
                if self.warn:
                    warnings.warn(f"skipping unreadable image {self.path(image_id)}: {exc}",
                                  stacklevel=2)
                continue
            yield image_id, image


def _file_problem(path: Path) -> str | None:
    """Why `path` is not an image ovseg reads, or None when it is one."""
    if path.is_symlink() and not path.exists():
        return f"dangling symbolic link (to {os.readlink(path)}, which does not exist)"
    if not path.is_file():
        return "not a regular file"
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return (f"not an image file type ovseg reads ({path.suffix or 'no suffix'}; it reads "
                f"{', '.join(IMAGE_SUFFIXES)})")
    return _header_problem(path)


def _header_problem(path: Path) -> str | None:
    try:
        with Image.open(path) as img:
            img.verify()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _skip_message(root: Path, skipped: list[tuple[str, str]]) -> str:
    shown = "; ".join(f"{i} ({r})" for i, r in skipped[:3])
    more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    return (f"skipped {len(skipped)} file{'s' * (len(skipped) != 1)} that "
            f"{'are' if len(skipped) != 1 else 'is'} not readable images in {root}: "
            f"{shown}{more}")
