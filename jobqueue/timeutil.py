"""Timestamps: epoch floats for scores, ISO-8601 UTC strings for people."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from .exceptions import JobQueueError


def now() -> float:
    return time.time()


def iso(ts: float | None = None) -> str:
    """UTC, microseconds, as RQ writes them. Formatted by hand: the worker
    stamps every job it takes and records, and strftime costs twice as much."""
    ts = now() if ts is None else ts
    t = time.gmtime(ts)
    return (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}."
            f"{int(ts % 1 * 1_000_000):06d}Z")


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def to_epoch(when: datetime) -> float:
    """A naive datetime is taken as UTC, as RQ does."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: int | float | str | None) -> int | None:
    """Seconds from 30, '30s', '5m', '1h' or '2d' (as RQ accepts for job_timeout and TTLs)."""
    if value is None or isinstance(value, (int, float)):
        return None if value is None else int(value)
    text = value.strip().lower()
    if text.lstrip("-").isdigit():
        return int(text)
    if text[:-1].isdigit() and text[-1:] in _UNITS:
        return int(text[:-1]) * _UNITS[text[-1]]
    raise JobQueueError(f"invalid duration {value!r}: use seconds or a number with s, m, h or d ('90s', '5m', '1h')")
