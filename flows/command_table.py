"""The README's command table, read from the `ovseg` argument parser itself.

`usage_lines()` gives every leaf command's usage as argparse prints it (optional flags in
brackets, `-h` left out), one line each. `uv run python -m flows.command_table` prints them as
the rows the README's table starts with; a test compares the README with them, flag for flag.
"""

from __future__ import annotations

import argparse

from flows.cli import build_parser


def _leaves(parser: argparse.ArgumentParser):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield parser
        return
    for sub in subs[0].choices.values():
        yield from _leaves(sub)


def usage_lines() -> list[str]:
    """`ovseg run [--config CONFIG] ...`: each leaf command's one-line usage, in parser order."""
    lines = []
    for leaf in _leaves(build_parser()):
        usage = " ".join(leaf.format_usage().split()).removeprefix("usage: ")
        lines.append(usage.replace(" [-h]", ""))
    return lines


def main() -> None:
    for line in usage_lines():
        cell = line.replace("|", "\\|")  # a | inside a Markdown table cell
        print(f"| `{cell}` | |")


if __name__ == "__main__":
    main()
