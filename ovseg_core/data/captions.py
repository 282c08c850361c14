"""A captioned image corpus of the synthetic world, for pretraining the tiny CLIP.

Real CLIP has read captions about far more concepts than a segmentation dataset labels. This
corpus gives the synthetic world (`ovseg_core.data.synth`) that property: images drawn in the
world's style that show every class of the world (the ground, the seen shapes and the unseen
shapes), each with a caption in words.

Three kinds of sample:
- object: one shape on the ground, captioned with one of CLIP's 80 prompt templates (the forms
  the text tower meets at segmentation time, e.g. "a photo of a star.") or a plain sentence
  ("a star on the ground.");
- ground: the bare ground ("a photo of the bare ground.", or a template with "ground");
- scene: a window of a `render_scene` scene (with or without unseen shapes), captioned with the
  shapes visible in it ("a star and a red disk on the ground.").

The corpus is not the target: it is drawn in its own style (CORPUS_STYLE: a ground of any tint
around the target's, stronger colour jitter, larger objects), objects are partly covered by ground
(OCCLUDED_SHARE), object captions sometimes name the wrong class (MISNAMED_SHARE) and scene
captions leave some objects out (OMITTED_SHARE), as web captions do. So the pretrained tiny
CLIP is an imperfect teacher of the target.

Every sample has a `key`: the sorted target class ids its caption names (ground alone = (0,)).
Two samples with the same key say the same thing, so the contrastive loss treats them as
positives of each other. The corpus is generated on the fly and is a pure function of
(seed, stream, batch index, size, count): nothing is written to disk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ovseg_core.data.synth import WORLD_STYLE, Style, render_scene, render_shapes, world_classes
from ovseg_core.templates import fill_templates

CORPUS_VERSION = 2
"""Bump when anything that changes the generated samples changes."""

WORLD_SIZE = 128
"""Side in px of a synthetic-world scene; objects keep this scale at any corpus image size."""

CORPUS_STYLE = Style(ground=(135.0, 125.0, 115.0), jitter=40, radius=(0.16, 0.30),
                     ground_tint=40)
"""How corpus images are drawn (the target's style is `synth.WORLD_STYLE`); radii are
fractions of WORLD_SIZE."""

OCCLUDED_SHARE = 0.3
"""Share of object samples with a rectangle of ground (OCCLUDER_SIDE) over part of them."""

OCCLUDER_SIDE = (0.3, 0.5)
"""Side range of an occluding rectangle, as a fraction of the image side."""

MISNAMED_SHARE = 0.1
"""Share of object captions that name another shape (the sample's key is what it says)."""

OMITTED_SHARE = 0.2
"""Chance that a scene caption leaves out each visible shape (at least one stays named)."""

KIND_WEIGHTS = {"object": 0.45, "ground": 0.1, "scene": 0.45}
"""How often each kind of sample is drawn."""

OFF_CENTRE = 0.4
"""An object's centre stays at least this many radii inside the image border."""

MIN_VISIBLE = 0.03
"""A shape is named in a scene caption when it covers at least this fraction of the image."""

TEMPLATE_SHARE = 0.5
"""Share of object / ground captions written with CLIP's prompt templates."""

OBJECT_FORMS = (
    "{a}.", "{a} on the ground.", "a close-up of {a}.", "a photo of {a} on the ground.",
    "there is {a} on the ground.", "a picture of {a}.", "{a} lying on the ground.",
)
GROUND_FORMS = (
    "the ground.", "a photo of the bare ground.", "empty ground.", "nothing but ground.",
    "a picture of the ground.", "bare ground with nothing on it.",
)
SCENE_FORMS = (
    "{list} on the ground.", "a photo of {list} on the ground.", "{list}.",
    "a picture of {list}.", "{there} {list} on the ground.",
)
TRAIN_STREAM = 0
"""The stream of training batches; evaluation uses other streams (held out)."""


@dataclass(frozen=True)
class CaptionedImage:
    """One corpus sample: image uint8 (S, S, 3) RGB, its caption, and the key (see module doc)."""

    image: np.ndarray
    caption: str
    key: tuple[int, ...]


def with_article(name: str) -> str:
    """ "orange star" -> "an orange star"; "red disk" -> "a red disk"."""
    return ("an " if name[0] in "aeiou" else "a ") + name


def name_list(names: list[str]) -> str:
    """Names with articles joined as "a red disk, a blue square and an orange star"."""
    phrases = [with_article(n) for n in names]
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def object_caption(rng: np.random.Generator, name: str) -> str:
    """A caption for one object of class `name`: a prompt template or a plain sentence."""
    if rng.random() < TEMPLATE_SHARE:
        templates = fill_templates(name)
        return templates[int(rng.integers(0, len(templates)))]
    form = OBJECT_FORMS[int(rng.integers(0, len(OBJECT_FORMS)))]
    return form.format(a=with_article(name))


def ground_caption(rng: np.random.Generator, name: str) -> str:
    """A caption for the bare ground (class `name`)."""
    if rng.random() < TEMPLATE_SHARE:
        templates = fill_templates(name)
        return templates[int(rng.integers(0, len(templates)))]
    return GROUND_FORMS[int(rng.integers(0, len(GROUND_FORMS)))]


def scene_caption(rng: np.random.Generator, names: list[str]) -> str:
    """A caption naming several objects (in the given order) on the ground."""
    form = SCENE_FORMS[int(rng.integers(0, len(SCENE_FORMS)))]
    there = "there is" if len(names) == 1 else "there are"
    return form.format(list=name_list(names), there=there)


def render_object(rng: np.random.Generator, size: int, class_id: int,
                  style: Style = CORPUS_STYLE) -> tuple[np.ndarray, np.ndarray]:
    """One shape of target class `class_id` (1..8) near the centre of a `size` px image.

    The radius is drawn in `style` (style.radius x WORLD_SIZE px), the centre within a jitter
    that keeps a good part of the shape inside (OFF_CENTRE).
    Returns image uint8 (S, S, 3), label uint16 (S, S).
    """
    radius = float(rng.uniform(*style.radius) * WORLD_SIZE)
    jitter = max(0.0, size / 2 - OFF_CENTRE * radius)
    cx, cy = size / 2 + rng.uniform(-jitter, jitter, size=2)
    return render_shapes(rng, size, [(class_id, radius, float(cx), float(cy))], style)


def occlude(rng: np.random.Generator, image: np.ndarray, label: np.ndarray,
            style: Style = CORPUS_STYLE) -> None:
    """Cover a random rectangle (OCCLUDER_SIDE) of image uint8 (S, S, 3) with fresh ground of
    `style`, and of label uint16 (S, S) with 0, in place."""
    size = image.shape[0]
    h, w = (int(v * size) for v in rng.uniform(*OCCLUDER_SIDE, size=2))
    y0, x0 = (int(v) for v in rng.integers(0, size - max(h, w) + 1, size=2))
    ground, _ = render_ground(rng, size, style)
    image[y0:y0 + h, x0:x0 + w] = ground[y0:y0 + h, x0:x0 + w]
    label[y0:y0 + h, x0:x0 + w] = 0


def render_ground(rng: np.random.Generator, size: int,
                  style: Style = CORPUS_STYLE) -> tuple[np.ndarray, np.ndarray]:
    """The bare ground: image uint8 (S, S, 3), label uint16 (S, S) of zeros."""
    return render_shapes(rng, size, [], style)


def scene_window(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A random `size` px window of a WORLD_SIZE scene in CORPUS_STYLE, half of them target
    scenes (unseen shapes labelled), half source scenes (unseen shapes unlabelled, so unnamed)."""
    with_unseen = bool(rng.random() < 0.5)
    image, label = render_scene(rng, WORLD_SIZE, with_unseen, CORPUS_STYLE)
    if size >= WORLD_SIZE:
        return image, label
    y0, x0 = (int(v) for v in rng.integers(0, WORLD_SIZE - size + 1, size=2))
    return image[y0:y0 + size, x0:x0 + size], label[y0:y0 + size, x0:x0 + size]


def visible_shapes(label: np.ndarray, min_fraction: float = MIN_VISIBLE) -> list[int]:
    """Shape ids (>= 1) covering at least `min_fraction` of label uint16 (H, W), largest first."""
    counts = np.bincount(label.ravel().astype(np.int64))
    ids = [i for i in range(1, counts.size) if counts[i] >= min_fraction * label.size]
    return sorted(ids, key=lambda i: -counts[i])


def sample(rng: np.random.Generator, size: int) -> CaptionedImage:
    """Draw one captioned image of side `size` px (kinds in KIND_WEIGHTS proportions)."""
    names = world_classes()
    kinds = list(KIND_WEIGHTS)
    weights = np.array([KIND_WEIGHTS[k] for k in kinds])
    kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
    if kind == "object":
        class_id = int(rng.integers(1, len(names)))
        image, label = render_object(rng, size, class_id)
        if rng.random() < OCCLUDED_SHARE:
            occlude(rng, image, label)
        if rng.random() < MISNAMED_SHARE:
            class_id = int(rng.choice([i for i in range(1, len(names)) if i != class_id]))
        return CaptionedImage(image, object_caption(rng, names[class_id]), (class_id,))
    if kind == "scene":
        image, label = scene_window(rng, size)
        shown = visible_shapes(label)
        named = [i for i in shown if rng.random() >= OMITTED_SHARE]
        shown = named or shown[:1]
        if shown:
            order = [shown[int(i)] for i in rng.permutation(len(shown))]
            caption = scene_caption(rng, [names[i] for i in order])
            return CaptionedImage(np.ascontiguousarray(image), caption, tuple(sorted(shown)))
    image, _ = render_ground(rng, size)
    return CaptionedImage(image, ground_caption(rng, names[0]), (0,))


def caption_batch(seed: int, index: int, size: int, count: int,
                  stream: int = TRAIN_STREAM) -> list[CaptionedImage]:
    """Batch `index` of the corpus: `count` samples of side `size` px.

    A pure function of its arguments (its own numpy stream [CORPUS_VERSION, seed, stream, index]),
    so any batch can be regenerated without the ones before it.
    """
    rng = np.random.default_rng([CORPUS_VERSION, seed, stream, index])
    return [sample(rng, size) for _ in range(count)]


def labelled_objects(seed: int, stream: int, size: int, per_class: int,
                     style: Style = WORLD_STYLE) -> tuple[np.ndarray, np.ndarray]:
    """Single-object images of every class (ground = bare ground) in `style` (default: the
    target's), unoccluded, for zero-shot checks.

    Returns images uint8 (N * per_class, S, S, 3) and class ids int64 (N * per_class,), N the
    world's classes, ordered class by class. Use a stream other than TRAIN_STREAM to hold out.
    """
    rng = np.random.default_rng([CORPUS_VERSION, seed, stream])
    images, ids = [], []
    for class_id in range(len(world_classes())):
        for _ in range(per_class):
            if class_id == 0:
                image, _ = render_ground(rng, size, style)
            else:
                image, _ = render_object(rng, size, class_id, style)
            images.append(image)
            ids.append(class_id)
    return np.stack(images), np.array(ids, dtype=np.int64)
