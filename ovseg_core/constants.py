"""Values shared by every part of ovseg (this module imports nothing heavy, so the CLI's
argument parsers and the run configuration can use it without loading torch). The terms
ovseg_core shares with the store (the ignore label, what paints, stage names, the painting
rule) live in `storage.terms`, the one module of storage ovseg_core imports."""

from storage.terms import IGNORE_INDEX

__all__ = ["IGNORE_INDEX"]

MAX_CLASSES = 65535
"""Class ids are stored as uint16 (IGNORE_INDEX excluded), so a vocabulary holds at most this
many."""

ALPHA = 0.3
"""Eq. 6: the loss weight of seen classes; unseen classes get 1 - ALPHA."""

PAPER_GATE = 0.9
"""The paper's confidence gate: regions above it prompt SAM."""

DATASET_KINDS = ("generic", "coco-stuff", "ade150", "ade847", "pc59", "pc459", "voc20")
"""Labelled dataset layouts `ovseg_core.data.open_dataset` reads."""

DEFAULT_WORKSPACE = "ovseg-workspace"
"""Where `ovseg run` and `ovseg sql` work when no --workspace is given."""

SYNTHETIC_WORLD = {"train": 48, "val": 16, "target": 16, "target_val": 32}
"""Images of each split of the built-in synthetic world that the main job makes and
`ovseg data synth` writes by default: labelled source train / val, target images to
self-train on, held-out labelled target images that every round is measured on."""
