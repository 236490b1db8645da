"""Retry policy: how often a failed job runs again and after what pause."""

from __future__ import annotations

from typing import Iterable


class Retry:
    """``Retry(max=3, interval=[1, 5, 30])``: as in RQ, a list gives the pause
    before each retry (the last one repeats); a number is used for all."""

    def __init__(self, max: int, interval: int | float | Iterable[int | float] = 0) -> None:
        if max < 1:
            raise ValueError("Retry(max=...) must be at least 1")
        intervals = [interval] if isinstance(interval, (int, float)) else list(interval)
        if not intervals or any(i < 0 for i in intervals):
            raise ValueError("Retry intervals must be a non-empty list of numbers >= 0")
        self.max = max
        self.intervals = [float(i) for i in intervals]

    def __repr__(self) -> str:
        return f"Retry(max={self.max}, interval={self.intervals})"


def retry_delay(intervals: list[float], retries_done: int) -> float:
    """The pause before retry number ``retries_done + 1``."""
    if not intervals:
        return 0.0
    return intervals[min(retries_done, len(intervals) - 1)]
