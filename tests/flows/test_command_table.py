"""The README's command table lists every `ovseg` command exactly as its argument parser
reads it: the same flags, the same metavars, optional flags in brackets, and no command the
parser does not have."""

import re
from pathlib import Path

from flows.command_table import usage_lines

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> list[str]:
    """The first cell of every README table row that starts with `ovseg ...` (a `|` inside a
    Markdown table cell is written `\\|`)."""
    cells = re.findall(r"^\| `(ovseg [^`]+)` \|", README.read_text(), flags=re.MULTILINE)
    return [cell.replace("\\|", "|") for cell in cells]


def test_readme_command_table_matches_argparse():
    documented, parsed = readme_commands(), usage_lines()
    assert sorted(set(parsed) - set(documented)) == [], "missing or different in the README"
    assert sorted(set(documented) - set(parsed)) == [], "in the README, not in argparse"
    assert len(documented) == len(parsed)


def test_usage_lines_show_optional_flags_in_brackets():
    def line(command: str) -> str:
        return next(u for u in usage_lines() if u.startswith(command + " "))

    assert "[--format {png,tiff,coco,yolo}]" in line("ovseg export")
    assert "[--checkpoint CHECKPOINT]" in line("ovseg predict")
    assert " --round ROUND " in line("ovseg export")  # required: no brackets
    assert "[--max-rows MAX_ROWS]" in line("ovseg sql")
