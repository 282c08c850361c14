"""Pictures for people: label-map overlays with a colour legend, and side-by-side panels.

Colours (`class_colours(class_names)`), the same for a vocabulary in every picture and round:
- a class whose name holds a colour word has that colour: "blue square" is drawn blue, "red
  disk" red (the first word of `COLOUR_WORDS` in its first synonym, as whole words);
- every other class takes the next colour of the fixed `PALETTE`, in class-id order, skipping
  palette colours near (RGB distance < NEAR) a colour that a colour word gave this vocabulary;
  past the palette, golden-ratio hues.
An overlay fills each class with its colour at `ALPHA` over the photo and draws each region's
outline at full colour, so the objects stay visible; ignored pixels (`IGNORE_INDEX`: no label,
nothing painted) are dimmed to grey with dark diagonal hatching, and the legend names them.
"""

from __future__ import annotations

import colorsys
import re
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ovseg_core.constants import IGNORE_INDEX

COLOUR_WORDS = {
    "red": (215, 35, 35), "green": (40, 175, 60), "blue": (35, 75, 225),
    "yellow": (240, 215, 30), "orange": (245, 135, 20), "purple": (140, 45, 185),
    "violet": (140, 45, 185), "pink": (245, 120, 185), "magenta": (230, 35, 200),
    "cyan": (30, 210, 225), "teal": (0, 128, 128), "brown": (135, 80, 35),
    "black": (25, 25, 25), "white": (245, 245, 245), "grey": (128, 128, 128),
    "gray": (128, 128, 128), "gold": (212, 175, 55), "silver": (190, 190, 200),
    "navy": (20, 30, 120), "maroon": (128, 0, 0), "olive": (128, 128, 0), "lime": (150, 230, 40),
}
"""Colour word -> RGB, for class names that say their colour."""
PALETTE = np.array([
    (0, 128, 128), (240, 50, 230), (170, 110, 40), (0, 130, 200), (210, 245, 60),
    (128, 0, 0), (250, 190, 212), (70, 240, 240), (145, 30, 180), (255, 225, 25),
    (60, 180, 75), (230, 25, 75), (245, 130, 48), (220, 190, 255), (128, 128, 0),
    (170, 255, 195), (255, 215, 180), (0, 0, 128), (255, 250, 200), (128, 128, 128),
], dtype=np.uint8)
"""The fixed colours of classes without a colour word, in class-id order (teal, magenta,
brown, sky blue, lime, maroon, pink, ...)."""
NEAR = 90.0
"""A palette colour closer than this (Euclidean, RGB 0-255) to a colour-word colour of the
vocabulary is skipped."""
ALPHA = 0.35
"""Weight of a class's colour over the photo inside its region."""
IGNORED_LABEL = "ignored (no label)"
"""The legend's name of ignored pixels."""

ROW = 18  # legend row height in px
FONT_SIZE = 14


def colour_word(name: str) -> tuple[int, int, int] | None:
    """The colour a class name says ("blue square" -> blue), None when it names none."""
    for word in re.findall(r"[a-z]+", name.split(", ")[0].lower()):
        if word in COLOUR_WORDS:
            return COLOUR_WORDS[word]
    return None


def class_colours(class_names: Sequence[str]) -> np.ndarray:
    """uint8 (N, 3): one colour per class, see the module docstring."""
    named = [colour_word(n) for n in class_names]
    taken = np.array([c for c in named if c is not None], np.float32).reshape(-1, 3)
    free = iter(c for c in PALETTE.astype(np.float32)
                if not len(taken) or np.linalg.norm(taken - c, axis=1).min() >= NEAR)
    colours, extra = [], 0
    for colour in named:
        if colour is None:
            colour = next(free, None)
            if colour is None:
                colour, extra = _hue(extra), extra + 1
        colours.append(tuple(int(v) for v in colour))
    return np.array(colours, dtype=np.uint8).reshape(len(class_names), 3)


def _hue(k: int) -> tuple[int, int, int]:
    """The k-th colour past the palette: golden-ratio hues."""
    hue = (k * 0.618033988749895) % 1.0
    sat, val = 0.55 + 0.4 * ((k * 7) % 3) / 2, 0.65 + 0.35 * ((k * 5) % 2)
    return tuple(int(255 * v) for v in colorsys.hsv_to_rgb(hue, sat, val))


def palette(num_classes: int) -> np.ndarray:
    """uint8 (num_classes, 3): the colours of classes without colour words (`PALETTE`, then
    golden-ratio hues)."""
    return class_colours([f"class {k}" for k in range(num_classes)])


def colorize(label_map: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """uint16 (H, W) ids -> uint8 (H, W, 3) with `colours` (N, 3); ignore pixels are black."""
    table = np.concatenate([colours, np.zeros((1, 3), np.uint8)])
    n = len(colours)
    ids = np.where(label_map == IGNORE_INDEX, n, np.minimum(label_map, n))
    return table[ids.astype(np.int64)]


def present_classes(label_maps: Sequence[np.ndarray], limit: int = 24) -> list[int]:
    """Class ids found in the maps, most pixels first (at most `limit`)."""
    counts: dict[int, int] = {}
    for label_map in label_maps:
        ids, n = np.unique(label_map[label_map != IGNORE_INDEX], return_counts=True)
        for i, c in zip(ids.tolist(), n.tolist(), strict=True):
            counts[i] = counts.get(i, 0) + c
    return sorted(counts, key=lambda i: (-counts[i], i))[:limit]


def paint(image: np.ndarray, label_map: np.ndarray, colours: np.ndarray,
          alpha: float = ALPHA) -> np.ndarray:
    """uint8 (H, W, 3): `image` with each class filled at `alpha`, region outlines at full
    colour (2 px: one on each side of a boundary) and ignored pixels hatched grey."""
    fill = colorize(label_map, colours).astype(np.float32)
    labelled = (label_map != IGNORE_INDEX)[..., None]
    out = np.where(labelled, (1 - alpha) * image + alpha * fill, _ignored(image))
    edge = _edges(label_map) & labelled[..., 0]
    out[edge] = fill[edge]
    return out.astype(np.uint8)


def _ignored(image: np.ndarray) -> np.ndarray:
    """float32 (H, W, 3): the image dimmed towards grey, with dark diagonal hatching."""
    grey = 0.35 * image.astype(np.float32) + 0.65 * 150.0
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    grey[(xx + yy) % 8 == 0] = 70.0
    return grey


def _edges(label_map: np.ndarray) -> np.ndarray:
    """bool (H, W): pixels with a 4-neighbour of another label."""
    edge = np.zeros(label_map.shape, bool)
    dy = label_map[1:] != label_map[:-1]
    dx = label_map[:, 1:] != label_map[:, :-1]
    edge[1:] |= dy
    edge[:-1] |= dy
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    return edge


def overlay(image: np.ndarray, label_map: np.ndarray, class_names: Sequence[str],
            alpha: float = ALPHA, max_legend: int = 24) -> np.ndarray:
    """`paint` the classes over `image` (uint8 (H, W, 3)) and add a legend on the right.

    The legend lists the classes present, largest first (at most `max_legend`), and ignored
    pixels when there are any. Returns uint8 (H', W + legend width, 3), H' >= H.
    """
    colours = class_colours(class_names)
    painted = paint(image, label_map, colours, alpha)
    return with_legend(painted, present_classes([label_map], max_legend), class_names,
                       ignored=bool((label_map == IGNORE_INDEX).any()))


def upscale(array: np.ndarray, factor: int) -> np.ndarray:
    """An (H, W[, C]) picture or label map `factor` times larger, nearest-neighbour."""
    if factor <= 1:
        return array
    return np.repeat(np.repeat(array, factor, axis=0), factor, axis=1)


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
    canvas = Image.new("RGB", (width, height + ROW + 6), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    left = 0
    for img, title in zip(images, titles, strict=True):
        canvas.paste(Image.fromarray(img), (left, ROW + 6))
        draw.text((left + 2, 2), title, fill=(0, 0, 0), font=_font())
        left += img.shape[1] + 4
    return np.asarray(canvas)


def with_legend(image: np.ndarray, present: list[int], class_names: Sequence[str],
                ignored: bool = False) -> np.ndarray:
    """uint8 `image` with a legend on its right: one swatch per class id in `present` (in
    `class_colours`), and the ignored pixels' hatching when `ignored`."""
    colours = class_colours(class_names)
    font = _font()
    labels = [class_names[i].split(", ")[0] for i in present] + ([IGNORED_LABEL] if ignored
                                                                  else [])
    text_w = max([int(font.getlength(t)) for t in labels] + [40])
    legend_w = ROW + 12 + text_w
    height = max(image.shape[0], ROW * len(labels) + 8)
    canvas = Image.new("RGB", (image.shape[1] + legend_w, height), (255, 255, 255))
    canvas.paste(Image.fromarray(image), (0, 0))
    draw = ImageDraw.Draw(canvas)
    x0 = image.shape[1] + 6
    side = ROW - 4
    for row, text in enumerate(labels):
        y = 4 + row * ROW
        if row < len(present):
            swatch = np.broadcast_to(colours[present[row]], (side, side, 3))
        else:
            swatch = _ignored(np.full((side, side, 3), 128, np.uint8)).astype(np.uint8)
        canvas.paste(Image.fromarray(np.ascontiguousarray(swatch)), (x0, y))
        draw.rectangle([x0, y, x0 + side - 1, y + side - 1], outline=(0, 0, 0))
        draw.text((x0 + ROW + 2, y), text, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def _font():
    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()
