"""Progress lines of the long commands: `done/total (p %)`, a rate and an ETA as H:MM:SS.

    tracker = progress.Tracker(total=5000, start=restored_step)
    tracker.line(step, "pairs", per_item=batch)  # '1200/5000 (24 %), 47.1 pairs/s, ETA 0:11:30'
"""

from __future__ import annotations

import math
import time

from absl import logging


def clock(seconds: float | None) -> str:
    """Seconds as H:MM:SS ('?' when unknown or not finite)."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def fraction(done: int, total: int) -> str:
    """'done/total (p %)'; the percentage is rounded down, so 100 % means finished."""
    share = 100 * done // total if total > 0 else 0
    return f"{done}/{total} ({share} %)"


def eta_seconds(done: int, total: int, rate: float) -> float | None:
    """Seconds left at `rate` items per second (None while the rate is unknown or zero)."""
    if rate <= 0 or not math.isfinite(rate):
        return None
    return max(0, total - done) / rate


class Tracker:
    """The rate and ETA of a count towards `total` that started at `start` (a resumed run's restored
    step): only the items done since this tracker began count towards the rate."""

    def __init__(self, total: int, start: int = 0, now=time.perf_counter):
        self.total, self.start = int(total), int(start)
        self.now = now
        self.t0 = now()

    def rate(self, done: int) -> float:
        """Items per second since the tracker began (0 before any time or item has passed)."""
        elapsed = self.now() - self.t0
        return (done - self.start) / elapsed if elapsed > 0 and done > self.start else 0.0

    def line(self, done: int, unit: str = "images", per_item: float = 1.0) -> str:
        """'done/total (p %), R unit/s, ETA H:MM:SS'; `per_item`: units per item (pairs per step)."""
        rate = self.rate(done)
        return (f"{fraction(done, self.total)}, {rate * per_item:.1f} {unit}/s, "
                f"ETA {clock(eta_seconds(done, self.total, rate))}")


def phase(command: str, name: str, t0: float, now=time.perf_counter) -> float:
    """Logs '<command>: <name> in S s', the seconds since `t0`; returns the time now (the next
    phase's start)."""
    t = now()
    logging.info("%s: %s in %.1f s", command, name, t - t0)
    return t
