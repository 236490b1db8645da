"""``Retry-After``, read in one place for the whole downloader (downloads and
the API sources): seconds or an HTTP date, never negative, and clamped to a
cap (a server asking for 32 years gets the cap); a value that does not parse
means "no advice", so the caller's own backoff applies."""

from __future__ import annotations

import email.utils
import math
import time

DEFAULT_CAP = 3600.0  # DOWNLOADER_MAX_RETRY_AFTER


def retry_after(value: str | None, cap: float = DEFAULT_CAP, now: float | None = None) -> float | None:
    """Seconds to wait, in [0, cap], or None when ``value`` is absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when is None or when.tzinfo is None:
            return None  # a date without a zone is not an HTTP date
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), cap)
