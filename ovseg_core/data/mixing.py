"""Training sets made of other training sets: concatenation and vocabulary remapping.

Retraining in a self-training round mixes the pseudo-labelled target with the labelled source
(remapped into the target vocabulary), so the seen classes stay anchored to real labels while
the unseen ones are learned from pseudo-labels.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from ovseg_core.constants import IGNORE_INDEX


class ConcatSamples:
    """Samples of several `SegmentationSamples`, one after the other."""

    def __init__(self, parts: Sequence):
        self.parts = [p for p in parts if len(p) > 0]
        self._ends = np.cumsum([len(p) for p in self.parts]).tolist()

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        part = bisect.bisect_right(self._ends, index)
        start = self._ends[part - 1] if part else 0
        return self.parts[part][index - start]


class RemappedSamples:
    """Samples whose labels are re-numbered from one vocabulary into another, by class name.

    Classes of `source_names` missing from `target_names` become IGNORE_INDEX.
    """

    def __init__(self, samples, source_names: Sequence[str], target_names: Sequence[str]):
        self.samples = samples
        position = {name: i for i, name in enumerate(target_names)}
        lookup = np.full(65536, IGNORE_INDEX, dtype=np.uint16)
        for i, name in enumerate(source_names):
            lookup[i] = position.get(name, IGNORE_INDEX)
        self._lookup = lookup

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, label = self.samples[index]
        return image, self._lookup[label]
