"""Progress of a long step, for people: a live bar on a terminal, a few plain lines elsewhere.

Every progress display in ovseg goes through `Progress` (or `track` over an iterable):

- on a terminal: tqdm's bar, named by the step (`desc`, e.g. "round 1: label"), removed when
  the step ends;
- when the stream is not a terminal (a log file, CI): one line each time another `every`
  percent is done (default 10) and at least `interval` seconds (default 5) have passed since
  the step's last line, never carriage-return updates;
- either way, one line when the step ends: what finished, how much, how long, and the last
  values given to `set_postfix` (e.g. the loss).

Lines go to `stream` (default: sys.stderr, read when the display is made).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, TypeVar

T = TypeVar("T")

EVERY = 10
"""Percent of the total between two plain lines when the stream is not a terminal."""
INTERVAL = 5.0
"""Seconds at least between two plain lines of one step (a short step shows its closing line)."""


def is_terminal(stream: IO[str]) -> bool:
    """True when `stream` is an interactive terminal (a live bar makes sense there)."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class Progress:
    """Progress of one step over `total` units (images, steps, ...).

    desc: what the step is, shown first on every line ("stage one: train").
    unit: what is counted, plural ("images", "steps").
    initial: units already done (a resumed step); they count as done, not as work of this run.
    disable: show nothing at all (worker processes, library calls that are not the job's).
    """

    def __init__(self, total: int | None, desc: str, unit: str = "items", initial: int = 0,
                 disable: bool = False, stream: IO[str] | None = None, every: int = EVERY,
                 interval: float = INTERVAL):
        self.total, self.desc, self.unit = total, desc, unit
        self.n, self.initial, self.every, self.interval = initial, initial, every, interval
        self.disable, self.closed = disable, False
        self.stream = sys.stderr if stream is None else stream
        self.postfix: dict[str, object] = {}
        self.started = self._last = time.perf_counter()
        self._next_pct = self._pct_step(initial)
        self._bar = None
        if not disable and is_terminal(self.stream):
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False,
                             file=self.stream, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        """`n` more units are done."""
        self.n += n
        if self.disable:
            return
        if self._bar is not None:
            self._bar.update(n)
        elif self.total and self._percent() >= self._next_pct and self.n < self.total:
            self._next_pct = self._pct_step(self.n)
            if time.perf_counter() - self._last >= self.interval:
                self._line(f"{self._percent():3.0f}% ({self.n}/{self.total} {self.unit}, "
                           f"{self._elapsed():.0f} s)")

    def set_postfix(self, **values) -> None:
        """Values shown beside the bar and on the closing line (e.g. loss="0.412")."""
        self.postfix = values
        if self._bar is not None:
            self._bar.set_postfix(values, refresh=False)

    def close(self) -> None:
        """End the step: remove the bar and write its one closing line (once)."""
        if self.closed:
            return
        self.closed = True
        if self._bar is not None:
            self._bar.close()
        if self.disable:
            return
        amount = f"{self.n}/{self.total} {self.unit}" if self.total else f"{self.n} {self.unit}"
        if self.initial:
            amount += f" (resumed at {self.initial})"
        ended = "stopped" if self.total and self.n < self.total else "done"
        self._line(f"{ended}: {amount} in {self._elapsed():.1f} s")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- helpers
    def _percent(self) -> float:
        return 100.0 * self.n / self.total if self.total else 0.0

    def _pct_step(self, n: int) -> float:
        """The next percent mark after `n` units (a multiple of `every`)."""
        if not self.total:
            return float("inf")
        return (int(100.0 * n / self.total) // self.every + 1) * self.every

    def _elapsed(self) -> float:
        return time.perf_counter() - self.started

    def _line(self, text: str) -> None:
        extra = "".join(f", {k} {v}" for k, v in self.postfix.items())
        self.stream.write(f"{self.desc} {text}{extra}\n")
        self.stream.flush()
        self._last = time.perf_counter()


def track(items: Iterable[T], desc: str, total: int | None = None, unit: str = "items",
          disable: bool = False, stream: IO[str] | None = None) -> Iterator[T]:
    """Yield `items`, showing their progress as `Progress` does (closed at the end)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, desc, unit, disable=disable, stream=stream) as bar:
        for item in items:
            yield item
            bar.update(1)


def step_name(round: int, step: str) -> str:
    """The name a step of the run shows: "stage one: train" (round 0), "round 2: retrain"."""
    return f"{'stage one' if round == 0 else f'round {round}'}: {step}"


def say(message: str, stream: IO[str] | None = None) -> None:
    """Write "[ovseg] message" as one line to `stream` (default sys.stderr). Written to the
    stream, not printed: inside a Prefect run that logs prints, a print goes only to the run's
    logs, and this line is for the person watching the job."""
    stream = sys.stderr if stream is None else stream
    stream.write(f"[ovseg] {message}\n")
    stream.flush()
