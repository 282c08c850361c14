"""Vocabularies: classes.txt files and the standard class-name lists shipped with ovseg.

The shipped lists (`class_names/*.txt`, one class per line, synonyms separated by ", ") are the
ones SED / CAT-Seg evaluate with, in the order of the prepared label ids.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ovseg_core.errors import OvsegError

STANDARD_VOCABULARIES = ("ade150", "ade847", "pc59", "pc459", "voc20", "coco-stuff")


def parse_class_lines(text: str, source: str) -> list[str]:
    """One class per line; trailing blank lines ignored, blank lines inside are an error."""
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if not line:
            raise OvsegError(f"{source}: line {number} is empty (one class name per line)")
    if not lines:
        raise OvsegError(f"{source}: no class names")
    if len(set(lines)) != len(lines):
        dup = sorted({n for n in lines if lines.count(n) > 1})
        raise OvsegError(f"{source}: duplicate class names: {', '.join(dup[:5])}")
    return lines


def read_classes_txt(path: Path) -> list[str]:
    """Read a classes.txt (one class per line, line k = class id k-1)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise OvsegError(f"class list not found: {path}") from None
    return parse_class_lines(text, str(path))


def write_classes_txt(path: Path, names: list[str]) -> None:
    """Write a vocabulary as classes.txt."""
    Path(path).write_text("".join(f"{n}\n" for n in names), encoding="utf-8")


def standard_class_names(vocabulary: str) -> list[str]:
    """The shipped class list of a benchmark: one of STANDARD_VOCABULARIES."""
    if vocabulary not in STANDARD_VOCABULARIES:
        raise OvsegError(
            f"unknown vocabulary {vocabulary!r}; known: {', '.join(STANDARD_VOCABULARIES)}"
        )
    text = resources.files("ovseg_core.data").joinpath(f"class_names/{vocabulary}.txt").read_text(
        encoding="utf-8"
    )
    return parse_class_lines(text, f"ovseg_core/data/class_names/{vocabulary}.txt")


def parse_class_argument(text: str) -> list[str]:
    """`--classes "cat, dog, grass"`: comma-separated class names (one name per class)."""
    names = [n.strip() for n in text.split(",")]
    names = [n for n in names if n]
    if not names:
        raise OvsegError("--classes is empty; give names separated by commas")
    if len(set(names)) != len(names):
        raise OvsegError(f"--classes repeats a name: {text!r}")
    return names
