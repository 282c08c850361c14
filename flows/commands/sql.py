"""`ovseg sql "QUERY"`: read-only SQL over a workspace's pseudo-labels, lineage and views."""

from __future__ import annotations

import argparse

from ovseg_core.constants import DEFAULT_WORKSPACE

_CELL = 40

EPILOG = """views: pseudo_labels, images, shards, rounds, class_stats, confidence_histogram,
sam_vs_agreement, class_coverage_drift, images_without_accepted, human_labels

examples:
  ovseg sql "SELECT * FROM class_stats WHERE round = ?" --param 1
  ovseg sql "SELECT image_id FROM images_without_accepted" --format csv"""


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
    parser.set_defaults(handler=run)


def _parse_value(text: str):
    """A --param value as int, float or str, in that order of preference."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _cell(value) -> str:
    if value is None:
        return "NULL"
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return text if len(text) <= _CELL else text[:_CELL - 3] + "..."


def format_table(names: list[str], rows: list[dict], total: int) -> str:
    """Aligned plain-text table; numbers right-aligned, long cells cut at 40 characters."""
    cells = [[_cell(row[n]) for n in names] for row in rows]
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
    numeric = [bool(rows) and all(isinstance(r[n], int | float) or r[n] is None for r in rows)
               for n in names]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

    out = [line(names), line(["-" * w for w in widths])] + [line(r) for r in cells]
    shown = f"{len(rows)} of {total} rows" if len(rows) < total else f"{total} rows"
    return "\n".join(out + [f"({shown})"])


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
        json.dump(table.to_pylist(), sys.stdout, default=str, indent=1)
        sys.stdout.write("\n")
    elif args.format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([row[n] for n in names] for row in table.to_pylist())
    else:
        rows = table.slice(0, max(args.max_rows, 0)).to_pylist()
        print(format_table(names, rows, table.num_rows))
    return 0
