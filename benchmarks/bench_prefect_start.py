"""How long the first Prefect flow call of a process takes (the temporary local server start).

Run twice with the same PREFECT_HOME: the first run is a fresh home, the second a warm one.

    PREFECT_HOME=/tmp/phome uv run python benchmarks/bench_prefect_start.py
"""

from __future__ import annotations

import time


def main() -> None:
    start = time.perf_counter()
    from flows.prefect_env import configure_prefect

    configure_prefect()
    from prefect import flow

    imported = time.perf_counter()

    @flow
    def noop() -> int:
        return 1

    noop()
    called = time.perf_counter() - imported
    print(f"import {imported - start:.1f} s, first flow call {called:.1f} s")
    from storage.results import figure, record

    record("prefect_start", [figure("first flow call (temporary server start)", round(called, 1),
                                    "s"),
                             figure("import", round(imported - start, 1), "s")],
           title="Prefect's temporary server start (first flow call of a process)")


if __name__ == "__main__":
    main()
