"""The heartbeat: a thread of its own that proves the worker alive and keeps
the deadlines of its running attempts ahead of Redis's clock, whatever the
main loop is busy with (a slow callback, a long round trip). It reports the
attempts that are no longer current, so the worker can stop them."""

from __future__ import annotations

import logging
import random
import threading
import time
from queue import SimpleQueue
from typing import Callable

import redis

from ..backend import Backend, text
from .outcome import key_of_member
from .timing import Timing

log = logging.getLogger("jobqueue.worker")


class Heartbeat(threading.Thread):
    """``attempts()`` returns the (queue, started member) pairs to keep
    alive, ``stats()`` the counters to publish (field, value, ...);
    ``registration`` is written again whenever the worker's entry is gone
    (it expired while the worker was cut off)."""

    def __init__(self, backend: Backend, name: str, timing: Timing, events: SimpleQueue, registration: list,
                 attempts: Callable[[], list[tuple[str, str]]], stats: Callable[[], list],
                 answered: Callable[[], None] = lambda: None) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.backend, self.worker, self.timing, self.events = backend, name, timing, events
        self.registration, self.attempts, self.stats = registration, attempts, stats
        self.answered = answered  # after each beat Redis answered (a failing lane may try again)
        self.stopped = threading.Event()
        self.beats = 0
        self._failing_since: float | None = None
        self._failures = 0

    def beat(self) -> list[str]:
        """One beat; returns the members that are no longer current."""
        keys, t = self.backend.keys, self.timing
        pairs = [x for pair in self.attempts() for x in pair]
        stats = self.stats()
        gone = self.backend.run("heartbeat", keys.worker(self.worker), keys.workers, self.worker,
                                int(t.heartbeat_ttl) + 1, t.heartbeat_ttl, keys.clock, t.heartbeat_interval,
                                len(self.registration), *self.registration, len(stats), *stats, *pairs)
        self.beats += 1
        return [text(m) for m in gone]

    def run(self) -> None:
        while not self.stopped.wait(self._pause()):
            try:
                gone = self.beat()
            except Exception as exc:  # any error: logged, and the next beat comes sooner
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                    level = logging.WARNING if isinstance(exc, redis.exceptions.RedisError) else logging.ERROR
                    log.log(level, "Heartbeat failed (%s: %s); retrying", type(exc).__name__, exc,
                            exc_info=level == logging.ERROR)
                continue
            if self._failing_since is not None:
                log.warning("Heartbeat back after %.1f s", time.monotonic() - self._failing_since)
                self._failing_since, self._failures = None, 0
            if gone:
                self.events.put(("superseded", [key_of_member(self.backend, m) for m in gone]))
            self.answered()

    def _pause(self) -> float:
        """A beat per interval; after a failure, sooner at first, then backing
        off to the interval again (never slower: after an outage the beat must
        land within the reaper's grace)."""
        interval = self.timing.heartbeat_interval
        if self._failing_since is None:
            return interval
        self._failures += 1
        return min(interval, 0.25 * 2 ** min(self._failures - 1, 6)) * random.uniform(0.5, 1.0)

    def stop(self) -> None:
        self.stopped.set()
