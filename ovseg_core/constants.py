"""Values shared by every part of ovseg_core."""

IGNORE_INDEX = 65535
"""The one ignore label inside ovseg (uint16 max); readers map dataset-specific ignore values to it."""

MAX_CLASSES = 65535
"""Class ids are stored as uint16, so a vocabulary holds at most this many classes."""
