"""Pictures for people: label-map overlays with a colour legend, and side-by-side panels.

Colours come from one fixed palette (`palette(n)`): the same class id is always the same colour,
in every report and every round. Ignore pixels are left uncoloured.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ovseg_core.constants import IGNORE_INDEX

_BASE = np.array([
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
], dtype=np.uint8)

ROW = 14  # legend row height in px


def palette(num_classes: int) -> np.ndarray:
    """uint8 (num_classes, 3): 20 distinct base colours, then golden-ratio hues."""
    colours = [tuple(c) for c in _BASE[:num_classes]]
    for k in range(len(colours), num_classes):
        hue = (k * 0.618033988749895) % 1.0
        sat, val = 0.55 + 0.4 * ((k * 7) % 3) / 2, 0.65 + 0.35 * ((k * 5) % 2)
        colours.append(tuple(int(255 * v) for v in colorsys.hsv_to_rgb(hue, sat, val)))
    return np.array(colours, dtype=np.uint8).reshape(num_classes, 3)


def colorize(label_map: np.ndarray, num_classes: int) -> np.ndarray:
    """uint16 (H, W) ids -> uint8 (H, W, 3) colours; ignore pixels are black."""
    colours = np.concatenate([palette(num_classes), np.zeros((1, 3), np.uint8)])
    ids = np.where(label_map == IGNORE_INDEX, num_classes, np.minimum(label_map, num_classes))
    return colours[ids.astype(np.int64)]


def overlay(image: np.ndarray, label_map: np.ndarray, class_names: Sequence[str],
            alpha: float = 0.5, max_legend: int = 24) -> np.ndarray:
    """Blend class colours over `image` (uint8 (H, W, 3)) and add a legend on the right.

    The legend lists the classes present, largest first (at most `max_legend`). Returns uint8
    (H', W + legend width, 3), H' >= H so that the legend fits.
    """
    n = len(class_names)
    colours = colorize(label_map, n).astype(np.float32)
    mask = (label_map != IGNORE_INDEX)[..., None]
    blended = np.where(mask, (1 - alpha) * image + alpha * colours, image).astype(np.uint8)
    ids, counts = np.unique(label_map[label_map != IGNORE_INDEX], return_counts=True)
    present = [int(i) for i in ids[np.argsort(-counts, kind="stable")]][:max_legend]
    return _with_legend(blended, present, class_names)


ADDED = (255, 0, 0)  # a mask's pixels the label does not have
DROPPED = (0, 0, 255)  # label pixels the mask misses


def errors_overlay(image: np.ndarray, pred: np.ndarray, label: np.ndarray,
                   classes: Sequence[int], void: int, alpha: float = 0.7) -> np.ndarray:
    """uint8 (H, W, 3): `image` with, for each class c in `classes`, the pixels `pred` gives c
    and `label` does not painted ADDED (red) and those `label` gives c and `pred` does not
    painted DROPPED (blue); pixels where `label` is `void` are left as they are.

    image: uint8 (H, W, 3); pred, label: (H, W) integer class ids.
    """
    out = image.astype(np.float32)
    valid = label != void
    for c in classes:
        truth, mask = (label == c) & valid, (pred == c) & valid
        for where, colour in ((mask & ~truth, ADDED), (truth & ~mask, DROPPED)):
            out[where] = (1 - alpha) * out[where] + alpha * np.array(colour, np.float32)
    return out.astype(np.uint8)


def panels(images: Sequence[np.ndarray], titles: Sequence[str]) -> np.ndarray:
    """Side-by-side uint8 pictures with a title above each (e.g. image / coarse / refined)."""
    height = max(img.shape[0] for img in images)
    width = sum(img.shape[1] for img in images) + 4 * (len(images) - 1)
    canvas = Image.new("RGB", (width, height + ROW + 4), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    left = 0
    for img, title in zip(images, titles, strict=True):
        canvas.paste(Image.fromarray(img), (left, ROW + 4))
        draw.text((left + 2, 2), title, fill=(0, 0, 0), font=_font())
        left += img.shape[1] + 4
    return np.asarray(canvas)


def _with_legend(image: np.ndarray, present: list[int], class_names: Sequence[str]) -> np.ndarray:
    colours = palette(len(class_names))
    font = _font()
    labels = [class_names[i].split(", ")[0] for i in present]
    text_w = max([int(font.getlength(t)) for t in labels] + [40])
    legend_w = ROW + 10 + text_w
    height = max(image.shape[0], ROW * len(present) + 8)
    canvas = Image.new("RGB", (image.shape[1] + legend_w, height), (255, 255, 255))
    canvas.paste(Image.fromarray(image), (0, 0))
    draw = ImageDraw.Draw(canvas)
    x0 = image.shape[1] + 4
    for row, (cid, text) in enumerate(zip(present, labels, strict=True)):
        y = 4 + row * ROW
        draw.rectangle([x0, y, x0 + ROW - 3, y + ROW - 3], fill=tuple(int(c) for c in colours[cid]),
                       outline=(0, 0, 0))
        draw.text((x0 + ROW + 2, y), text, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def _font():
    try:
        return ImageFont.load_default(size=11)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()
