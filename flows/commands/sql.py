"""`ovseg sql "QUERY"`: read-only SQL over a workspace's pseudo-labels, lineage and views."""

from __future__ import annotations

import argparse
import textwrap

from ovseg_core.constants import DEFAULT_WORKSPACE
from storage.views import VIEW_NAMES

CELL_WIDTH = 40
"""Characters of a cell shown in table format unless --max-width says otherwise."""
ELLIPSIS = "\u2026"

EPILOG = "\n".join([
    *textwrap.wrap("views: " + ", ".join(VIEW_NAMES), 78),
    "",
    "examples:",
    '  ovseg sql "SELECT * FROM class_stats WHERE round = ?" --param 1',
    '  ovseg sql "SELECT image_id FROM images_without_accepted" --format csv',
    "  ovseg sql \"SELECT stage, round, metrics FROM rounds\" --format json"])


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "sql", help="query the pseudo-label store with read-only SQL (DuckDB)",
        description="Run one read-only SQL query (DuckDB dialect) over a workspace.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("query", help="one SELECT statement; use ? for --param values")
    parser.add_argument("--workspace", default=DEFAULT_WORKSPACE,
                        help=f"workspace root, a path or fsspec URL (default {DEFAULT_WORKSPACE})")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
    parser.add_argument("--param", action="append", default=[], metavar="VALUE",
                        help="a value bound to the next ? placeholder (repeatable)")
    parser.add_argument("--max-rows", type=int, default=200,
                        help="rows shown in table format (default 200; csv/json show all)")
    parser.add_argument("--max-width", type=int, default=CELL_WIDTH, metavar="CHARS",
                        help=f"longest cell shown in table format (default {CELL_WIDTH}; 0 = no "
                        f"limit); a cut cell ends in {ELLIPSIS}")
    parser.set_defaults(handler=run)


def _parse_value(text: str):
    """A --param value as int, float or str, in that order of preference."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _cell(value, width: int) -> str:
    """A value as table text, cut to `width` characters (0: whole) ending in ELLIPSIS."""
    if value is None:
        return "NULL"
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return text if width <= 0 or len(text) <= width else text[:width - 1] + ELLIPSIS


def format_table(names: list[str], rows: list[dict], total: int,
                 width: int = CELL_WIDTH) -> str:
    """Aligned plain-text table; numbers right-aligned, cells longer than `width` characters
    cut (ending in ELLIPSIS, with a note under the table on how to see them whole)."""
    cells = [[_cell(row[n], width) for n in names] for row in rows]
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
    numeric = [bool(rows) and all(isinstance(r[n], int | float) or r[n] is None for r in rows)
               for n in names]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

    out = [line(names), line(["-" * w for w in widths])] + [line(r) for r in cells]
    shown = f"{len(rows)} of {total} rows" if len(rows) < total else f"{total} rows"
    out.append(f"({shown})")
    if width > 0 and any(len(_cell(row[n], 0)) > width for row in rows for n in names):
        out.append(f"(cells cut at {width} characters, marked {ELLIPSIS}: see them whole with "
                   "--max-width 0 or --format json)")
    return "\n".join(out)


def json_rows(table) -> list[dict]:
    """The rows of an Arrow table, with its JSON columns (storage.query.JSON_TYPE_KEY) as
    JSON values rather than strings."""
    import json

    from storage.query import JSON_TYPE_KEY

    rows = table.to_pylist()
    for field in table.schema:
        if (field.metadata or {}).get(JSON_TYPE_KEY) == b"JSON":
            for row in rows:
                if row[field.name] is not None:
                    row[field.name] = json.loads(row[field.name])
    return rows


def run(args) -> int:
    import csv
    import json
    import os
    import sys

    from storage.errors import StorageError
    from storage.fsio import local_path
    from storage.query import run_sql

    if local_path(args.workspace) is not None and not os.path.isdir(args.workspace):
        raise StorageError(f"no workspace at {args.workspace} (set --workspace)")
    table = run_sql(args.workspace, args.query, [_parse_value(v) for v in args.param] or None)
    names = table.schema.names
    if args.format == "json":
        json.dump(json_rows(table), sys.stdout, default=str, indent=1)
        sys.stdout.write("\n")
    elif args.format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([row[n] for n in names] for row in table.to_pylist())
    else:
        rows = table.slice(0, max(args.max_rows, 0)).to_pylist()
        print(format_table(names, rows, table.num_rows, args.max_width))
    return 0
