"""Class names matched by meaning, not by spelling: seen/unseen masks and label remapping.

COCO-Stuff says "sky-other", "couch", "tv"; ADE, Pascal Context and VOC say "sky", "sofa",
"tvmonitor". A source entry matches a target entry (each may hold synonyms separated by ", ")
with a *rank*, lower is better:

- 0: their first names agree after normalisation (`normalize_name`: case, a trailing "-other" /
  "-merged" / "-stuff" (also after "_" or " "), spaces, underscores and hyphens are ignored);
- 1: any of their synonyms agree after normalisation;
- SAME_RANK + k: the map says a source name and a target name are the same concept under two
  names ("couch" = "sofa"), the target name k-th in the list; used in both directions;
- INTO_RANK + k: the map says the source name's pixels belong to the broader target name
  ("wall-brick" -> "wall", "clouds" -> "sky"); used from source to target only.

Pairs listed as *distinct* never match, whatever their spelling ("dog" is not ADE-847's
"andiron, firedog, dog, dog-iron"). The shipped map, `class_names/coco_stuff_aliases.json`,
holds the reviewed COCO-Stuff -> ADE-150/847, PC-59/459, VOC-20 pairs and the policy they follow;
`NameMap.extend` adds a run's own pairs on top.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from importlib import resources

import numpy as np

from ovseg_core.constants import IGNORE_INDEX, MAX_CLASSES
from ovseg_core.errors import OvsegError

DEFAULT_MAP_FILE = "class_names/coco_stuff_aliases.json"
"""The shipped map, relative to the ovseg_core.data package."""

SUFFIXES = ("other", "merged", "stuff")
"""Suffixes COCO-Stuff / COCO-panoptic add (after "-", "_" or " ") to tell stuff from things."""

_SUFFIX = re.compile(r"[\s_\-]+(?:" + "|".join(SUFFIXES) + r")$")

LOOKUP_SIZE = 65536
"""Length of a remap lookup: every uint16 label value, IGNORE_INDEX included."""

SAME_RANK = 2
"""Rank of a "same" alias at list position 0 (module docstring)."""

INTO_RANK = 1000
"""Rank of an "into" alias at list position 0; every "same" match ranks better."""

AliasSpec = Mapping[str, str | Sequence[str]]
RELATIONS = ("same", "into", "distinct")


@functools.lru_cache(maxsize=1 << 16)
def normalize_name(name: str) -> str:
    """One class name in comparable form: "Sky-other" -> "sky", "dining table" -> "diningtable"."""
    text = _SUFFIX.sub("", name.strip().lower())
    return re.sub(r"[\s_\-]+", "", text)


def entry_names(entry: str) -> list[str]:
    """Normalised names of one vocabulary entry ("sofa, couch, lounge"), first name first."""
    names = [normalize_name(part) for part in entry.split(",")]
    return [n for n in names if n]


class NameMap:
    """The alias relations between class names (module docstring); immutable once built.

    same: name -> names of the same concept in other vocabularies, most preferred first.
    into: name -> broader names its pixels belong to, most preferred first (one way).
    distinct: name -> names that never match it (compared with entries' first names).
    Each value may be one name or a list of names.
    """

    def __init__(self, same: AliasSpec | None = None, into: AliasSpec | None = None,
                 distinct: AliasSpec | None = None):
        self._pairs: dict[str, dict[str, list[str]]] = {r: {} for r in RELATIONS}
        self._add({"same": same or {}, "into": into or {}, "distinct": distinct or {}}, first=False)

    @classmethod
    def default(cls) -> NameMap:
        """The shipped, reviewed COCO-Stuff map (DEFAULT_MAP_FILE); one shared instance."""
        return _default_map()

    @classmethod
    def from_json_text(cls, text: str, source: str = "name map") -> NameMap:
        """A map from JSON: {"same": {...}, "into": {...}, "distinct": {...}}; other keys
        ignored."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise OvsegError(f"{source}: not valid JSON ({err})") from None
        if not isinstance(data, dict):
            raise OvsegError(f"{source}: expected a JSON object with 'same' / 'into' / 'distinct'")
        return cls(data.get("same"), data.get("into"), data.get("distinct"))

    def extend(self, same: AliasSpec | None = None, into: AliasSpec | None = None,
               distinct: AliasSpec | None = None) -> NameMap:
        """A new map with these pairs added; for a name in both, the new names come first.

        `extend({"my sky": "sky"})` makes "my sky" and "sky" the same class; use `into` for a
        class whose pixels belong to a broader class of the other vocabulary.
        """
        extended = NameMap()
        extended._add(self._pairs, first=False)
        extended._add({"same": same or {}, "into": into or {}, "distinct": distinct or {}},
                      first=True)
        return extended

    def rank(self, source: str, target: str) -> int | None:
        """Match rank of a source entry to a target entry (module docstring); None: no match."""
        return _Index([target], self).matches(entry_names(source)).get(0)

    def same_class(self, a: str, b: str) -> bool:
        """Whether two entries name one concept (spelling, synonyms or "same"; symmetric)."""
        rank = self.rank(a, b)
        return rank is not None and rank < INTO_RANK

    def maps_into(self, source: str, target: str) -> bool:
        """Whether a source class's pixels belong to the target class (also via "into")."""
        return self.rank(source, target) is not None

    def seen_mask(self, target_names: Sequence[str], source_names: Sequence[str]) -> list[bool]:
        """One bool per target class: True when some source class maps into it."""
        index = _Index(target_names, self)
        seen = [False] * len(target_names)
        for entry in source_names:
            for target in index.matches(entry_names(entry)):
                seen[target] = True
        return seen

    def remap_lookup(self, source_names: Sequence[str], target_names: Sequence[str]) -> np.ndarray:
        """uint16 (LOOKUP_SIZE,): `lookup[source_label]` is the target label map (H, W).

        Source id i goes to its best-ranked target class (ties: the lowest target id), or to
        IGNORE_INDEX when no target class matches; IGNORE_INDEX stays IGNORE_INDEX.
        """
        for what, names in (("source", source_names), ("target", target_names)):
            if len(names) > MAX_CLASSES:
                raise OvsegError(f"{what} vocabulary has {len(names)} classes (max {MAX_CLASSES})")
        index = _Index(target_names, self)
        lookup = np.full(LOOKUP_SIZE, IGNORE_INDEX, dtype=np.uint16)
        for source, entry in enumerate(source_names):
            found = index.matches(entry_names(entry))
            if found:
                lookup[source] = min(found, key=lambda t: (found[t], t))
        return lookup

    def _add(self, specs: Mapping[str, AliasSpec], first: bool) -> None:
        for relation in RELATIONS:
            pairs = self._pairs[relation]
            for key, values in _checked(specs[relation], relation).items():
                old = pairs.get(key, [])
                pairs[key] = list(dict.fromkeys(values + old if first else old + values))
        self._same = _links(self._pairs["same"], both_ways=True)
        self._into = _links(self._pairs["into"], both_ways=False)
        never = _links(self._pairs["distinct"], both_ways=True)
        self._never = {(a, b) for a, linked in never.items() for b in linked}


class _Index:
    """Target vocabulary entries by normalised name, to match many source entries quickly."""

    def __init__(self, target_names: Sequence[str], name_map: NameMap):
        self.map = name_map
        self.first: list[str | None] = []
        self.by_name: dict[str, list[tuple[int, bool]]] = {}
        for target, entry in enumerate(target_names):
            names = entry_names(entry)
            self.first.append(names[0] if names else None)
            for position, name in enumerate(dict.fromkeys(names)):
                self.by_name.setdefault(name, []).append((target, position == 0))

    def matches(self, names: list[str]) -> dict[int, int]:
        """{target id: best rank} for one source entry given by its normalised `names`."""
        found: dict[int, int] = {}
        if not names:
            return found

        def offer(target: int, rank: int) -> None:
            if (names[0], self.first[target]) not in self.map._never:
                found[target] = min(rank, found.get(target, rank))

        for position, name in enumerate(names):
            for target, is_first in self.by_name.get(name, []):
                offer(target, 0 if position == 0 and is_first else 1)
        for base, links in ((SAME_RANK, self.map._same), (INTO_RANK, self.map._into)):
            for name in names:
                for other, k in links.get(name, {}).items():
                    for target, _ in self.by_name.get(other, []):
                        offer(target, base + k)
        return found


def _checked(spec: AliasSpec, what: str) -> dict[str, list[str]]:
    """{name: [names]} from a user mapping whose values are a name or a list of names."""
    if not isinstance(spec, Mapping):
        raise OvsegError(f"name map {what}: expected a mapping of name -> names, got {spec!r}")
    checked = {}
    for key, values in spec.items():
        values = [values] if isinstance(values, str) else values
        if not (_is_name(key) and isinstance(values, list | tuple) and all(map(_is_name, values))):
            raise OvsegError(f"name map {what}: {key!r}: {values!r} is not a name -> names entry")
        checked[key] = list(values)
    return checked


def _is_name(value) -> bool:
    return isinstance(value, str) and bool(normalize_name(value))


def _links(pairs: dict[str, list[str]], both_ways: bool) -> dict[str, dict[str, int]]:
    """Normalised name -> {linked normalised name: its best position in an alias list}."""
    links: dict[str, dict[str, int]] = {}
    for key, values in pairs.items():
        a = normalize_name(key)
        for position, value in enumerate(values):
            b = normalize_name(value)
            for x, y in ((a, b), (b, a)) if both_ways else ((a, b),):
                if x != y:
                    links.setdefault(x, {})[y] = min(position, links.get(x, {}).get(y, position))
    return links


@functools.lru_cache(maxsize=1)
def _default_map() -> NameMap:
    text = resources.files("ovseg_core.data").joinpath(DEFAULT_MAP_FILE).read_text(encoding="utf-8")
    return NameMap.from_json_text(text, f"ovseg_core/data/{DEFAULT_MAP_FILE}")
