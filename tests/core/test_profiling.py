"""Profiling is off unless enabled: production phases record nothing."""

import time

from ovseg_core import profiling


def test_phases_are_timed_only_when_enabled():
    profiling.reset_phases()
    with profiling.phase("work"):
        time.sleep(0.01)
    assert profiling.phase_seconds() == {}
    profiling.enable()
    try:
        with profiling.phase("work"):
            time.sleep(0.01)
        assert profiling.phase_seconds()["work"] >= 0.01
    finally:
        profiling.enable(False)
        profiling.reset_phases()
