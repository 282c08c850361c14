"""Datasets: readers for every layout, the synthetic dataset, transforms, the sample interface."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ovseg_core.data.datasets import DATASET_KINDS, open_dataset
from ovseg_core.data.io import read_image, read_label_raw, write_label
from ovseg_core.data.names import parse_class_argument, read_classes_txt, standard_class_names
from ovseg_core.data.readers import LabeledDataset
from ovseg_core.data.synth import read_synthetic_info, write_synthetic_dataset
from ovseg_core.data.unlabeled import UnlabeledImages


class SegmentationSamples(Protocol):
    """The one training-sample interface (numpy, so the storage layer implements it without torch).

    `samples[i] -> (image uint8 (H, W, 3) RGB, label uint16 (H, W))`, ignore = IGNORE_INDEX.
    """

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]: ...


__all__ = [
    "DATASET_KINDS",
    "LabeledDataset",
    "SegmentationSamples",
    "UnlabeledImages",
    "open_dataset",
    "parse_class_argument",
    "read_classes_txt",
    "read_image",
    "read_label_raw",
    "read_synthetic_info",
    "standard_class_names",
    "write_label",
    "write_synthetic_dataset",
]
