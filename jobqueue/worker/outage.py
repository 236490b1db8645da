"""What the worker does while Redis fails it: any Redis error (unreachable,
OOM, READONLY after a failover, BUSY, LOADING, MASTERDOWN, NOAUTH after a
password change) is logged once per kind, and the next try waits a capped,
jittered, doubling pause, so an idle worker stays near 0 % CPU and makes a
few connection attempts a second at most. Its attempts stay fenced: nothing
is recorded that Redis did not accept."""

from __future__ import annotations

import logging
import random
import re
import time

log = logging.getLogger("jobqueue.worker")
FIRST_PAUSE, LONGEST_PAUSE = 0.25, 5.0


class Outage:
    def __init__(self, where: str = "") -> None:
        self.where = where  # which Redis, for a worker of several namespaces
        self.since: float | None = None
        self.failures = 0
        self._kinds: set[str] = set()

    def failed(self, exc: Exception, running: int, outcomes: int) -> float:
        """Note the failure; returns how long to wait before the next try."""
        kind = _kind(exc)
        if self.since is None:
            self.since = time.monotonic()
        if kind not in self._kinds:
            self._kinds.add(kind)
            log.warning("Redis failed us%s (%s: %s); keeping %d running job(s) and %d outcome(s), retrying with "
                        "backoff", self.where, type(exc).__name__, _short(exc), running, outcomes)
        self.failures += 1
        pause = min(LONGEST_PAUSE, FIRST_PAUSE * 2 ** min(self.failures - 1, 10))
        return pause * random.uniform(0.5, 1.0)

    def recovered(self) -> None:
        if self.since is not None:
            log.warning("Redis%s is back after %.1f s (%d failed tries)", self.where, time.monotonic() - self.since,
                        self.failures)
        self.since, self.failures = None, 0
        self._kinds.clear()


_CODES = re.compile(r"\b(OOM|READONLY|BUSY|LOADING|MASTERDOWN|NOAUTH|NOPERM|WRONGTYPE|MISCONF|NOREPLICAS|"
                    r"CLUSTERDOWN|TRYAGAIN)\b")


def _kind(exc: Exception) -> str:
    """One log line per kind: Redis's error code when the text has one, else the exception's type."""
    found = _CODES.search(str(exc))
    if found:
        return found.group(1)
    return "OOM" if "maxmemory" in str(exc) else type(exc).__name__


def _short(exc: Exception, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."

