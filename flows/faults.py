"""Named kill points, so tests can SIGKILL a real run at an exact step (failpoint style).

`kill_point("after_shard_commit:1")` kills the process when the environment variable
`OVSEG_KILL_AT` names that point. Without the variable it costs one dict lookup.
"""

from __future__ import annotations

import os
import signal

KILL_ENV = "OVSEG_KILL_AT"


def kill_point(name: str) -> None:
    """SIGKILL this process if `OVSEG_KILL_AT` equals `name` (no cleanup runs, like a crash)."""
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
