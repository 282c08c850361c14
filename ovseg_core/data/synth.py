"""A small generated dataset: coloured, textured shapes on a textured ground.

Layout (the generic layout, written by `write_synthetic_dataset(out, seed)`):
```
out/source/classes.txt                  ground + 5 seen classes
out/source/{train,val}/{images,labels}/ labelled source domain: seen classes labelled; unseen
                                        shapes appear too, labelled ground
out/target/classes.txt                  the source classes + 3 unseen classes (same ids first)
out/target/{images,labels}/             target domain, self-trained on; its labels only measure
                                        the pseudo-labels
out/target_val/{images,labels}/         held-out target images (same classes.txt as target/) for
                                        mIoU per round; written when num_target_val > 0
out/dataset.json                        seen / unseen names, counts, seed
```
The world is made so that no single cue names a class and the labelled source teaches the
error self-training must undo:
- every unseen class wears a seen class's colour, with another texture and shape: a red object
  is a "red disk" or a "star", and the unseen names say no colour;
- source scenes hold unseen shapes too (each object is unseen with probability
  SOURCE_UNSEEN_SHARE), labelled ground, as real datasets leave unnamed things unlabelled: stage
  one learns to call them ground.
A tiny model still learns the source split on a CPU in minutes. The output is a pure function
of the arguments (byte-identical across runs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ovseg_core.data.io import write_label
from ovseg_core.data.names import write_classes_txt
from ovseg_core.errors import OvsegError


@dataclass(frozen=True)
class ShapeClass:
    name: str
    shape: str
    color: tuple[int, int, int]
    texture: str


@dataclass(frozen=True)
class Style:
    """How a scene is drawn: the ground's mean RGB and its per-image tint (+- per channel,
    0-255), each object's colour jitter (+- per channel) and its radius range (fractions of the
    scene side)."""

    ground: tuple[float, float, float]
    jitter: int
    radius: tuple[float, float]
    ground_tint: int = 0


WORLD_STYLE = Style(ground=(150.0, 128.0, 100.0), jitter=15, radius=(0.12, 0.22))
"""The style of the source and target scenes."""

SOURCE_UNSEEN_SHARE = 0.25
"""Probability that an object of a source scene is an unseen shape (labelled ground)."""


GROUND = "ground"
SEEN_SHAPES = (
    ShapeClass("red disk", "disk", (205, 40, 40), "flat"),
    ShapeClass("blue square", "square", (40, 70, 210), "hstripes"),
    ShapeClass("green triangle", "triangle", (40, 175, 60), "dots"),
    ShapeClass("yellow ring", "ring", (225, 205, 40), "flat"),
    ShapeClass("purple bar", "bar", (140, 50, 175), "diagonal"),
)
UNSEEN_SHAPES = (
    ShapeClass("star", "star", (205, 40, 40), "dots"),  # red disk's colour, triangle's texture
    ShapeClass("cross", "cross", (40, 70, 210), "vstripes"),  # the blue square's colour
    ShapeClass("diamond", "diamond", (140, 50, 175), "flat"),  # the purple bar's colour
)


def write_synthetic_dataset(out: str | Path, seed: int = 0, image_size: int = 128,
                            num_train: int = 48, num_val: int = 16, num_target: int = 32,
                            num_target_val: int = 0) -> Path:
    """Write the synthetic dataset under `out` (see the module docstring); returns `out`.

    Every split draws from its own generator ([seed, split index]), so adding held-out target
    images leaves the other splits byte-identical.
    """
    out = Path(out)
    if (out / "dataset.json").exists() or (out / "source").exists():
        raise OvsegError(f"{out} already holds a dataset; choose an empty folder")
    target_names = world_classes()
    source_names = target_names[:1 + len(SEEN_SHAPES)]
    write_classes_txt(_mkdir(out / "source") / "classes.txt", source_names)
    write_classes_txt(_mkdir(out / "target") / "classes.txt", target_names)
    splits = (("source/train", num_train, False), ("source/val", num_val, False),
              ("target", num_target, True), ("target_val", num_target_val, True))
    if num_target_val:
        write_classes_txt(_mkdir(out / "target_val") / "classes.txt", target_names)
    for index, (folder, count, with_unseen) in enumerate(splits):
        rng = np.random.default_rng([seed, index])
        vocab = target_names if with_unseen else source_names
        for k in range(count):
            image, label = render_scene(rng, image_size, with_unseen)
            name = f"{folder.replace('/', '_')}_{k:04d}"
            Image.fromarray(image).save(_mkdir(out / folder / "images") / f"{name}.png")
            write_label(_mkdir(out / folder / "labels") / f"{name}.png", label, len(vocab))
    info = {
        "name": "ovseg-synthetic", "seed": seed, "image_size": [image_size, image_size],
        "seen": source_names, "unseen": [c.name for c in UNSEEN_SHAPES],
        "source": {"classes": source_names, "train": num_train, "val": num_val},
        "target": {"classes": target_names, "images": num_target, "val": num_target_val},
    }
    (out / "dataset.json").write_text(json.dumps(info, indent=2) + "\n")
    return out


def read_synthetic_info(out: str | Path) -> dict:
    """dataset.json of a synthetic dataset, plus `target_seen`: one bool per target class."""
    path = Path(out) / "dataset.json"
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise OvsegError(f"not a synthetic dataset (no {path})") from None
    seen = set(info["seen"])
    info["target_seen"] = [name in seen for name in info["target"]["classes"]]
    return info


def render_scene(rng: np.random.Generator, size: int, with_unseen: bool,
                 style: Style = WORLD_STYLE) -> tuple[np.ndarray, np.ndarray]:
    """One image uint8 (size, size, 3) and its label uint16 (size, size).

    Ids: 0 = ground, 1..5 seen shapes, 6..8 unseen shapes (the target vocabulary order).
    Target scenes (`with_unseen`) draw every shape alike and always hold at least one unseen
    shape; source scenes (not `with_unseen`) draw an unseen shape with probability
    SOURCE_UNSEEN_SHARE per object and label it ground (0).
    """
    image = _ground(rng, size, style)
    label = np.zeros((size, size), dtype=np.uint16)
    count = int(rng.integers(3, 6))
    picks = [_pick(rng, with_unseen) for _ in range(count)]
    if with_unseen and all(p <= len(SEEN_SHAPES) for p in picks):
        picks[int(rng.integers(0, count))] = (len(SEEN_SHAPES) + 1
                                              + int(rng.integers(0, len(UNSEEN_SHAPES))))
    for class_id in picks:
        radius = float(rng.uniform(*style.radius) * size)
        cx, cy = rng.uniform(radius * 0.6, size - radius * 0.6, size=2)
        labelled = with_unseen or class_id <= len(SEEN_SHAPES)
        _paint(rng, image, label, class_id, radius, cx, cy, style, labelled)
    return image, label


def _pick(rng: np.random.Generator, with_unseen: bool) -> int:
    """A target class id 1..8 for one object of a target (`with_unseen`) or source scene."""
    if with_unseen:
        return 1 + int(rng.integers(0, len(SEEN_SHAPES) + len(UNSEEN_SHAPES)))
    if rng.random() < SOURCE_UNSEEN_SHARE:
        return len(SEEN_SHAPES) + 1 + int(rng.integers(0, len(UNSEEN_SHAPES)))
    return 1 + int(rng.integers(0, len(SEEN_SHAPES)))


def world_classes() -> list[str]:
    """The target vocabulary of the synthetic world: ground, the seen shapes, the unseen shapes."""
    return [GROUND] + [c.name for c in SEEN_SHAPES] + [c.name for c in UNSEEN_SHAPES]


def world_shape(class_id: int) -> ShapeClass:
    """The shape of target class id `class_id` in 1..8 (0 is the ground, which has none)."""
    shapes = SEEN_SHAPES + UNSEEN_SHAPES
    if not 1 <= class_id <= len(shapes):
        raise ValueError(f"class id {class_id} is not a shape (1..{len(shapes)})")
    return shapes[class_id - 1]


def render_shapes(rng: np.random.Generator, size: int,
                  objects: list[tuple[int, float, float, float]],
                  style: Style = WORLD_STYLE) -> tuple[np.ndarray, np.ndarray]:
    """Ground plus the given shapes, painted in order, in `style` (the ground and the colour
    jitter; the radii are given).

    objects: (class_id 1..8 in the target vocabulary, radius px, centre x px, centre y px).
    Returns image uint8 (size, size, 3) and label uint16 (size, size) with target class ids.
    """
    image = _ground(rng, size, style)
    label = np.zeros((size, size), dtype=np.uint16)
    for class_id, radius, cx, cy in objects:
        _paint(rng, image, label, class_id, radius, cx, cy, style)
    return image, label


def _paint(rng: np.random.Generator, image: np.ndarray, label: np.ndarray, class_id: int,
           radius: float, cx: float, cy: float, style: Style, labelled: bool = True) -> None:
    """Paint one shape of target class `class_id` (random angle, colour jitter, texture) into
    image uint8 (S, S, 3) and label uint16 (S, S) in place; radius and centre in px. Its
    pixels are labelled `class_id`, or ground (0) when not `labelled`."""
    size = image.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    spec = world_shape(class_id)
    mask = _shape_mask(spec.shape, xx - cx, yy - cy, radius, float(rng.uniform(0, np.pi)))
    jitter = rng.integers(-style.jitter, style.jitter + 1, size=3)
    color = np.clip(np.array(spec.color) + jitter, 0, 255)
    image[mask] = _texture(spec.texture, color, xx, yy, rng)[mask]
    label[mask] = class_id if labelled else 0


def _ground(rng: np.random.Generator, size: int, style: Style) -> np.ndarray:
    """The textured ground of `style`: uint8 (size, size, 3)."""
    coarse = rng.normal(0.0, 18.0, size=(size // 16, size // 16, 1))
    smooth = np.kron(coarse, np.ones((16, 16, 1)))
    fine = rng.normal(0.0, 8.0, size=(size, size, 1))
    base = np.array(style.ground)
    if style.ground_tint:
        base = base + rng.uniform(-style.ground_tint, style.ground_tint, size=3)
    return np.clip(base + smooth + fine, 0, 255).astype(np.uint8)


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float, angle: float) -> np.ndarray:
    dist = np.hypot(dx, dy)
    if shape == "disk":
        return dist <= r
    if shape == "ring":
        return (dist <= r) & (dist >= 0.55 * r)
    if shape == "square":
        return (np.abs(dx) <= 0.85 * r) & (np.abs(dy) <= 0.85 * r)
    if shape == "triangle":
        top = dy + r
        return (dy <= 0.7 * r) & (top >= 0) & (np.abs(dx) <= 0.62 * top)
    if shape == "bar":
        u = dx * np.cos(angle) + dy * np.sin(angle)
        v = -dx * np.sin(angle) + dy * np.cos(angle)
        return (np.abs(u) <= 1.4 * r) & (np.abs(v) <= 0.35 * r)
    if shape == "star":
        phi = np.arctan2(dy, dx)
        return dist <= r * (0.55 + 0.45 * np.cos(5 * (phi - angle)))
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= 1.1 * r
    if shape == "cross":
        arm = 0.3 * r
        return ((np.abs(dx) <= r) & (np.abs(dy) <= arm)) | ((np.abs(dx) <= arm) & (np.abs(dy) <= r))
    raise ValueError(f"unknown shape {shape!r}")


def _texture(kind: str, color: np.ndarray, xx: np.ndarray, yy: np.ndarray,
             rng: np.random.Generator) -> np.ndarray:
    """Full-size texture uint8 (H, W, 3) of one object colour."""
    shade = np.ones_like(xx)
    if kind == "hstripes":
        shade = np.where((yy // 3) % 2 == 0, 1.0, 0.7)
    elif kind == "vstripes":
        shade = np.where((xx // 3) % 2 == 0, 1.0, 0.65)
    elif kind == "diagonal":
        shade = np.where(((xx + yy) // 4) % 2 == 0, 1.0, 0.7)
    elif kind == "dots":
        shade = np.where(((xx % 5) < 2) & ((yy % 5) < 2), 0.6, 1.0)
    noise = rng.normal(0.0, 6.0, size=xx.shape + (3,))
    return np.clip(color * shade[..., None] + noise, 0, 255).astype(np.uint8)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
