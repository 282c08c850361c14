"""Prefect set-up for the `ovseg` command: a stable home, quiet logs, a clean exit.

Call `configure_prefect()` before the first `import prefect` of a process.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

DEFAULT_PREFECT_HOME = Path.home() / ".ovseg" / "prefect"


def configure_prefect(log_level: str = "CRITICAL") -> Path:
    """Point Prefect at a stable home and keep its per-task logs out of the user's terminal
    (they go to the Prefect API, where the UI shows them). The default level also keeps out
    Prefect's ERROR logs of a failed task or flow, with their tracebacks: the `ovseg` command
    prints a user's mistake as one line itself, and a bug's traceback (cli.py).

    Without `PREFECT_API_URL`, Prefect starts a temporary local server for the run (no server
    to install). Users who run a real server set `PREFECT_API_URL` and nothing here changes it.
    Returns the Prefect home in use.
    """
    home = Path(os.environ.setdefault("PREFECT_HOME", str(DEFAULT_PREFECT_HOME)))
    home.mkdir(parents=True, exist_ok=True)
    # Runs log what they did at INFO to the Prefect API (the UI's task logs); the terminal
    # shows only `log_level` and above.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", log_level)
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The first start migrates a fresh database: on a busy 2-core machine that takes > 20 s.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # The temporary server's shutdown can log cancelled-request noise; it is not the user's concern.
    for name in ("uvicorn", "uvicorn.error", "prefect.server"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return home
