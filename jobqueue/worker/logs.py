"""The worker's log lines show what jobs and Redis hand it, and those are
anyone's data: every string argument is printed with control characters
escaped (a newline in a job id cannot forge a log line) and cut to a
bounded length (a 5 MB description is not logged whole)."""

from __future__ import annotations

import logging

LONGEST = 300


def shown(value: str, limit: int = LONGEST) -> str:
    if value.isprintable() and len(value) <= limit:
        return value
    escaped = "".join(c if c.isprintable() else repr(c)[1:-1] for c in value[:limit])
    return escaped + (f"... ({len(value) - limit} more characters)" if len(value) > limit else "")


class SafeArguments(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(shown(a) if isinstance(a, str) else a for a in record.args)
        return True


def guard(logger: logging.Logger) -> logging.Logger:
    if not any(isinstance(f, SafeArguments) for f in logger.filters):
        logger.addFilter(SafeArguments())
    return logger
