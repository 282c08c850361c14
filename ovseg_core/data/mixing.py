"""Training sets made of other training sets: mixing by share, remapping.

Retraining in a self-training round mixes the pseudo-labelled target with the labelled source
(remapped into the target vocabulary), so the seen classes stay anchored to real labels while
the unseen ones are learned from pseudo-labels. `SharedSamples` fixes the source's share of the
mix whatever the two sizes are (a plain concatenation would let the larger set dominate).

Every class here is a `SegmentationSamples`: `len()` and `[i] -> (image uint8 (H, W, 3),
label uint16 (H, W))`, ignore = IGNORE_INDEX.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from ovseg_core.data.name_map import NameMap


class SharedSamples:
    """`primary` and `secondary` mixed so that a uniform index is secondary with prob. `share`.

    Indices [0, primary_slots) go to primary[i % len(primary)]; the `secondary_slots` after them
    go to secondary items in a permutation seeded by `seed`, cycled when the slots outnumber the
    items. primary_slots = repeats * len(primary) and
    len = ceil(primary_slots / (1 - share)), so secondary_slots / len is `share` within 1 / len.

    repeats: how many times the primary is laid out. None (default): the fewest that give every
    secondary item a slot, so a training run that draws indices uniformly sees all of a large
    source; 1: len = ceil(len(primary) / (1 - share)) and only that many secondary items are used.
    share = 0 gives exactly `primary` (the paper's stage two). share must be in [0, 1).
    """

    def __init__(self, primary, secondary, share: float, seed: int = 0,
                 repeats: int | None = None):
        self.primary, self.secondary = primary, secondary
        self.share = _checked_share(share)
        if len(primary) == 0:
            raise ValueError("SharedSamples: the primary samples are empty")
        if self.share > 0 and len(secondary) == 0:
            raise ValueError(f"SharedSamples: share {share} of an empty secondary")
        if repeats is not None and (not isinstance(repeats, int) or repeats < 1):
            raise ValueError(f"SharedSamples: repeats must be a positive int, got {repeats!r}")
        self.repeats = repeats or self._covering_repeats()
        self.primary_slots = self.repeats * len(primary)
        self.secondary_slots = _secondary_slots(self.primary_slots, self.share)
        n = len(secondary)
        self._order = np.random.default_rng([seed, 11]).permutation(n) if n else np.zeros(0, int)

    def __len__(self) -> int:
        return self.primary_slots + self.secondary_slots

    def source_of(self, index: int) -> str:
        """Which set index `index` is drawn from: "primary" or "secondary"."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        return "primary" if index < self.primary_slots else "secondary"

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self.source_of(index) == "primary":
            return self.primary[index % len(self.primary)]
        slot = index - self.primary_slots
        return self.secondary[int(self._order[slot % len(self.secondary)])]

    def _covering_repeats(self) -> int:
        """The fewest primary repeats whose secondary slots cover every secondary item."""
        if self.share == 0:
            return 1
        p, m = len(self.primary), len(self.secondary)
        share = Fraction(self.share)
        repeats = max(1, math.floor(m * (1 - share) / (share * p)))
        while _secondary_slots(repeats * p, self.share) < m:
            repeats += 1
        return repeats


def _checked_share(share) -> Fraction:
    """`share` as an exact fraction in [0, 1) (decimals like 0.15 stay 3/20); else ValueError."""
    if isinstance(share, bool) or not isinstance(share, int | float | Fraction):
        raise ValueError(f"share must be a number in [0, 1), got {share!r}")
    if not math.isfinite(share) or not 0 <= share < 1:
        raise ValueError(f"share must be in [0, 1) (0 = primary only), got {share!r}")
    exact = Fraction(share).limit_denominator(1_000_000)
    if exact >= 1:
        raise ValueError(f"share must be below 1 (0 = primary only), got {share!r}")
    return exact


def _secondary_slots(primary_slots: int, share: Fraction) -> int:
    """Slots for the secondary so it makes up `share` of ceil(primary_slots / (1 - share))."""
    return math.ceil(primary_slots / (1 - share)) - primary_slots


class RemappedSamples:
    """Samples whose labels are re-numbered from one vocabulary into another, by meaning.

    Each source class goes to the target class `name_map` matches it to ("sky-other" -> "sky",
    "wall-brick" -> "wall"; see ovseg_core.data.name_map); source classes without a match
    become IGNORE_INDEX. name_map: None = NameMap.default(); a config extends that map with
    `NameMap.default().extend(...)`.
    """

    def __init__(self, samples, source_names: Sequence[str], target_names: Sequence[str],
                 name_map: NameMap | None = None):
        self.samples = samples
        self.name_map = name_map if name_map is not None else NameMap.default()
        self._lookup = self.name_map.remap_lookup(source_names, target_names)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, label = self.samples[index]
        return image, self._lookup[label]
