"""The project's Markdown says what the code does now. History belongs in git: a document that
narrates how a figure or a default moved ("was ... until", "before X changed", "the last
session", "(was 0.3)", "previously") fails here, with the file, the line and the phrase."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HISTORY = [
    r"\bwas\b[^|]{0,80}?\buntil\b",
    r"\bbefore\b[^.|]{0,40}\bchanged\b",
    r"\bthe last\b[^.|]{0,40}\bsessions?\b",
    r"\(was [-+]?[\d.]",
    r"\bpreviously\b",
    r"\bsessions?\b",
    r"\bused to\b",
    r"\bold defaults?\b",
    r"\bearlier (runs?|measurements?|table)\b",
    r"\buntil (this|two|the last|recently)\b",
]


def tracked_markdown() -> list[Path]:
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "*.md"], capture_output=True,
                         text=True, check=True).stdout.split()
    return [ROOT / name for name in out]


def history_lines(text: str) -> list[tuple[int, str]]:
    """(line number, first matched phrase) of every line with a history pattern in `text`."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        matches = [re.search(p, line, flags=re.IGNORECASE) for p in HISTORY]
        first = next((m for m in matches if m), None)
        if first:
            found.append((number, first.group(0)))
    return found


def test_the_check_finds_history():
    text = "The gate was 0.9 until the tiny preset came.\nDefault 0.3 (was 0.5).\nAs the " \
           "last session measured.\nNow it is 0.3."
    assert [n for n, _ in history_lines(text)] == [1, 2, 3]


def test_markdown_describes_the_present():
    files = tracked_markdown()
    assert any(f.name == "README.md" for f in files)
    problems = [f"{f.relative_to(ROOT)}:{n}: {phrase!r}"
                for f in files for n, phrase in history_lines(f.read_text())]
    assert problems == [], "history narration in the docs:\n" + "\n".join(problems)
