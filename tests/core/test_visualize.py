"""Report colours agree with class names, regions keep their photo visible, ignored pixels are
shown and named in the legend."""

import numpy as np

from ovseg_core.constants import IGNORE_INDEX
from ovseg_core.data.synth import world_classes
from ovseg_core.visualize import (
    COLOUR_WORDS,
    IGNORED_LABEL,
    PALETTE,
    class_colours,
    paint,
    upscale,
    with_legend,
)


def _hue(rgb) -> str:
    """The dominant primary of an RGB colour: "red", "green" or "blue"."""
    return ("red", "green", "blue")[int(np.argmax(rgb))]


def test_the_built_in_worlds_classes_are_drawn_in_the_colour_they_name():
    names = world_classes()  # ground, red disk, blue square, ..., star, cross, diamond
    colours = class_colours(names)
    by_name = dict(zip(names, colours.tolist(), strict=True))
    assert _hue(by_name["blue square"]) == "blue" and by_name["blue square"][2] > 200
    assert _hue(by_name["red disk"]) == "red" and by_name["red disk"][1] < 60
    assert _hue(by_name["green triangle"]) == "green"
    assert by_name["yellow ring"] == list(COLOUR_WORDS["yellow"])
    assert by_name["purple bar"] == list(COLOUR_WORDS["purple"])
    # names without a colour word: the fixed palette, away from the named colours
    assert len({tuple(c) for c in colours.tolist()}) == len(names)
    named = np.array([COLOUR_WORDS[w] for w in ("red", "blue", "green", "yellow", "purple")],
                     np.float32)
    for plain in ("ground", "star", "cross", "diamond"):
        assert tuple(by_name[plain]) in {tuple(c) for c in PALETTE.tolist()}
        assert np.linalg.norm(named - np.array(by_name[plain]), axis=1).min() >= 90


def test_synonyms_and_case_use_the_first_name():
    colours = class_colours(["Blue Car, red car", "a wall"])
    assert colours[0].tolist() == list(COLOUR_WORDS["blue"])
    assert colours[1].tolist() == PALETTE[0].tolist()


def test_paint_keeps_the_photo_outlines_regions_and_hatches_ignored_pixels():
    image = np.full((12, 12, 3), 200, np.uint8)
    label = np.full((12, 12), IGNORE_INDEX, np.uint16)
    label[2:10, 2:10] = 1
    colours = class_colours(["sky", "blue square"])
    out = paint(image, label, colours)
    inside = out[5, 5].astype(int)
    assert inside.tolist() != colours[1].tolist()  # the photo shows through the fill
    assert inside[2] > inside[0]  # ... tinted blue
    assert out[2, 5].tolist() == colours[1].tolist()  # the outline is the class colour
    assert out[0, 0].tolist() != image[0, 0].tolist()  # ignored: dimmed, hatched
    assert len({tuple(p) for p in out[0:8, 0]}) == 2  # grey and its hatching lines


def test_legend_names_the_ignored_pixels():
    picture = np.full((20, 20, 3), 255, np.uint8)
    plain = with_legend(picture, [1], ["sky", "blue square"], ignored=False)
    marked = with_legend(picture, [1], ["sky", "blue square"], ignored=True)
    assert marked.shape[0] > plain.shape[0] or marked.shape[1] > plain.shape[1] or \
        (marked != plain).any()
    assert IGNORED_LABEL == "ignored (no label)"
    swatch = marked[4 + 18 + 5, 20 + 6 + 5]  # the second row's swatch: the ignored hatching
    assert swatch.tolist() != [255, 255, 255]


def test_upscale_repeats_pixels():
    a = np.arange(6, dtype=np.uint16).reshape(2, 3)
    assert upscale(a, 2).tolist() == [[0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2],
                                      [3, 3, 4, 4, 5, 5], [3, 3, 4, 4, 5, 5]]
