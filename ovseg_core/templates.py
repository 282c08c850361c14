"""The 80 ImageNet prompt templates of CLIP (e.g. "a photo of a {}."), P = 80."""

from __future__ import annotations

from collections.abc import Sequence

from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

IMAGENET_TEMPLATES: tuple[str, ...] = tuple(t("{}") for t in OPENAI_IMAGENET_TEMPLATES)
"""The templates as strings with one "{}" slot for the class name."""


def synonyms(entry: str) -> list[str]:
    """A vocabulary entry's synonyms: "person, people" -> ["person", "people"]."""
    names = [s.strip() for s in entry.split(", ")]
    return [s for s in names if s] or [entry.strip()]


def fill_templates(name: str, templates: Sequence[str] = IMAGENET_TEMPLATES) -> list[str]:
    """One prompt per template for one class name (P strings)."""
    return [t.replace("{}", name) for t in templates]
