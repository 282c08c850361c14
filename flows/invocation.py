"""How the person started `ovseg`, so that the commands ovseg prints run as printed.

`uv run ovseg run` leaves no `ovseg` on the shell's PATH, so a printed `ovseg sql ...` fails
there (`ovseg: command not found`); the same command started through uv runs.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def ovseg_command(environ: dict[str, str] | None = None, argv0: str | None = None) -> str:
    """The words that start `ovseg` the way this process was started:

    - "uv run ovseg" under `uv run` (uv sets UV in the environment of what it runs);
    - "ovseg" when that name on PATH is the program that is running;
    - the path the program was started by (".venv/bin/ovseg") when it is not on PATH;
    - "python -m flows.cli" (the interpreter as it was called) when started as a module.
    """
    env = os.environ if environ is None else environ
    argv0 = sys.argv[0] if argv0 is None else argv0
    if env.get("UV"):
        return "uv run ovseg"
    name = Path(argv0).name
    if name != "ovseg":
        return f"{Path(sys.orig_argv[0]).name if sys.orig_argv else 'python'} -m flows.cli"
    found = shutil.which("ovseg", path=env.get("PATH"))
    if found and Path(found).resolve() == Path(argv0).resolve():
        return "ovseg"
    return argv0
