"""Progress of a grading run: how many are done, how fast, and how long the rest will take.

One line per graded submission (its points and seconds, then the count, the rate and the time
left), so that a log file shows the same as a terminal; on a terminal a tqdm bar below the
lines keeps the count, rate and time left in view while the slow submissions run.
"""

from __future__ import annotations

import sys
import time
from typing import Callable

from .results import SubmissionResult

__all__ = ["Progress", "format_seconds"]


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 01 min``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    """Count, rate and time left of ``total`` submissions, ``done`` of them graded before this run.

    Args:
        log: where the lines go (``print`` by default); a tqdm bar is added only when lines go
            to ``print`` and stderr is a terminal.
    """

    def __init__(self, total: int, done: int = 0, log: Callable[[str], None] = print):
        self.total, self.done, self.start_done = total, done, done
        self.started = time.monotonic()
        self.bar = None
        self.log = log
        if log is print and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=done, unit="nb", desc="grading", dynamic_ncols=True)
            self.log = self.bar.write

    def rate(self) -> float:
        """Submissions per minute graded by this run so far (parallel jobs included)."""
        elapsed = time.monotonic() - self.started
        return 60 * (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0

    def status(self) -> str:
        rate = self.rate()
        left = self.total - self.done
        eta = format_seconds(60 * left / rate) if rate > 0 else "?"
        return f"{rate:.1f}/min, {format_seconds(time.monotonic() - self.started)} so far, {eta} left"

    def update(self, result: SubmissionResult) -> None:
        """One more submission graded: log its line (points, seconds, count, rate, time left)."""
        self.done += 1
        width = len(str(self.total))
        failed = f", did not run to the end: {result.failure}" if result.failure else ""
        self.log(f"[{self.done:>{width}}/{self.total}] {result.submission}: {result.points:g}/{result.max_points:g} "
                 f"({result.seconds:g} s{failed}) | {self.status()}")
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
