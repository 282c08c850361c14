"""The `ovseg` command.

Each subcommand is a module in `flows.commands` with `add_parser(subparsers)` and `run(args)`.
Modules import only argparse-level things at the top, so `ovseg --help` stays fast; the heavy
packages (torch, prefect, duckdb) are imported inside `run`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMAND_MODULES = (
    "flows.commands.run",
    "flows.commands.data",
    "flows.commands.train",
    "flows.commands.evaluate",
    "flows.commands.predict",
    "flows.commands.refine_check",
    "flows.commands.sql",
    "flows.commands.clip",
    "flows.commands.export",
    "flows.commands.review",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ovseg",
        description="STSeg open-vocabulary segmentation with SAM-refined self-training.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # command not built yet in this checkout
                continue
            raise
        module.add_parser(sub)
    return parser


def _user_error_types() -> tuple[type[BaseException], ...]:
    from ovseg_core.errors import OvsegError
    from storage.errors import StorageError

    return (OvsegError, StorageError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.handler(args)
    except KeyboardInterrupt:
        print("ovseg: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `ovseg sql ... | head -1`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except _user_error_types() as exc:
        print(f"ovseg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
