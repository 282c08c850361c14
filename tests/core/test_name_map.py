"""Class names matched by meaning: the reviewed COCO-Stuff map, extension, seen masks, remapping."""

import json
from importlib import resources

import numpy as np
import pytest

from ovseg_core.constants import IGNORE_INDEX
from ovseg_core.data.name_map import NameMap, normalize_name
from ovseg_core.data.names import standard_class_names
from ovseg_core.errors import OvsegError

I = IGNORE_INDEX  # noqa: E741

COCO_TO_OTHERS = [
    ("sky-other", "sky"),
    ("airplane", "aeroplane"),
    ("couch", "sofa"),
    ("tv", "tvmonitor"),
    ("dining table", "diningtable"),
    ("potted plant", "pottedplant"),
    ("motorcycle", "motorbike"),
    ("wall-other", "wall"),
]


@pytest.mark.parametrize("coco, other", COCO_TO_OTHERS)
def test_coco_names_map_to_the_other_benchmarks_names(coco, other):
    m = NameMap.default()
    assert m.maps_into(coco, other)
    assert m.seen_mask([other, "giraffe-free class"], [coco]) == [True, False]


def test_same_concept_is_symmetric_and_into_is_one_way():
    m = NameMap.default()
    assert m.same_class("couch", "sofa") and m.same_class("sofa", "couch")
    assert m.same_class("sky-other", "sky") and m.same_class("Wall_Other", "wall")
    assert m.maps_into("wall-brick", "wall") and not m.maps_into("wall", "wall-brick")
    assert not m.same_class("wall-brick", "wall")
    assert not m.maps_into("table", "diningtable")  # a sibling, not the same table
    assert m.maps_into("dining table", "table")


def test_non_pairs_stay_unseen():
    m = NameMap.default()
    assert not m.same_class("cat", "animal") and not m.maps_into("cat", "animal")
    assert not m.maps_into("giraffe", "horse")
    assert m.seen_mask(["animal", "plaything", "computer"], ["cat", "teddy bear", "laptop"]) == [
        False, False, False]


def test_synonyms_and_distinct_pairs():
    m = NameMap.default()
    assert m.rank("couch", "sofa, couch, lounge") == 1
    assert m.rank("sky-other", "sky") == 0
    assert not m.maps_into("dog", "andiron, firedog, dog, dog-iron")
    assert m.maps_into("dog", "dog, domestic dog, canis familiaris")


def test_extension_by_a_user_dict():
    base = NameMap.default()
    assert not base.same_class("stuff-i-made-up", "sky")
    extended = base.extend({"stuff-i-made-up": "sky"}, into={"kitten": ["animal"]},
                           distinct={"couch": ["sofa"]})
    assert extended.same_class("stuff-i-made-up", "sky")
    assert extended.same_class("sky", "stuff-i-made-up")
    assert extended.maps_into("kitten", "animal") and not extended.maps_into("animal", "kitten")
    assert not extended.same_class("couch", "sofa")
    assert base.same_class("couch", "sofa")  # the shipped map is left as it was
    with pytest.raises(OvsegError, match="name -> names"):
        base.extend({"sky": 3})


def test_remap_lookup_of_a_small_label_array():
    coco = ["sky-other", "couch", "wall-brick", "giraffe", "tv"]
    ade = ["wall", "sky", "sofa", "television receiver"]
    lookup = NameMap.default().remap_lookup(coco, ade)
    assert lookup.dtype == np.uint16 and lookup.shape == (65536,)
    label = np.array([[0, 1, 2], [3, 4, I]], np.uint16)
    np.testing.assert_array_equal(lookup[label], [[1, 2, 0], [I, 3, I]])


def test_remap_prefers_the_same_class_over_a_broader_one():
    # a shared synonym beats an "into" alias ("handbag" -> "bag", "carpet" -> "rug")
    target = ["rug", "bag", "bag, handbag, pocketbook, purse", "rug, carpet, carpeting"]
    lookup = NameMap.default().remap_lookup(["handbag", "carpet", "rug", "suitcase"], target)
    assert lookup[:4].tolist() == [2, 3, 0, 1]  # equal ranks: the lowest target id


def test_normalisation():
    assert normalize_name(" Sky-other ") == "sky"
    assert normalize_name("dining_table") == normalize_name("dining table") == "diningtable"
    assert normalize_name("desk-stuff") == "desk" and normalize_name("tree-merged") == "tree"
    assert normalize_name("wall-brick") == "wallbrick"


def test_reviewed_map_names_exist_in_the_shipped_lists():
    data = json.loads(resources.files("ovseg_core.data").joinpath(
        "class_names/coco_stuff_aliases.json").read_text(encoding="utf-8"))
    coco = {normalize_name(n) for n in standard_class_names("coco-stuff")}
    others = {normalize_name(part) for kind in ("ade150", "ade847", "pc59", "pc459", "voc20")
              for entry in standard_class_names(kind) for part in entry.split(",")}
    for relation in ("same", "into"):
        for key, values in data[relation].items():
            assert normalize_name(key) in coco, key
            assert all(normalize_name(v) in others for v in values), (key, values)


def test_seen_classes_of_voc_from_coco_stuff():
    m = NameMap.default()
    assert all(m.seen_mask(standard_class_names("voc20"), standard_class_names("coco-stuff")))
    pc59 = standard_class_names("pc59")
    seen = m.seen_mask(pc59, standard_class_names("coco-stuff"))
    assert sorted(n for n, s in zip(pc59, seen, strict=True) if not s) == ["computer", "plate",
                                                                            "sign"]
