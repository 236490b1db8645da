"""Housekeeping any worker does for all: heartbeat, promoting due scheduled
jobs, returning dead workers' jobs to their queues, deleting expired results,
forgetting dead workers."""

from __future__ import annotations

import logging
import time
from typing import Callable

from .. import timeutil
from ..backend import Backend, text
from .timing import Timing

log = logging.getLogger("jobqueue.worker")


class Maintenance:
    def __init__(self, backend: Backend, worker_name: str, queues: list[str], timing: Timing,
                 on_abandoned: Callable[[list[str], str], None] | None = None) -> None:
        self.backend, self.name, self.queues, self.timing = backend, worker_name, queues, timing
        self.on_abandoned = on_abandoned  # told which jobs the reaper failed
        self.next_heartbeat = 0.0
        self.next_promote = 0.0
        self.next_pass = 0.0

    def heartbeat(self, running: dict[str, str], stats: list) -> None:
        """``running`` maps job id -> queue; their deadlines move forward.
        ``stats``: worker fields (name, value, ...) written with the beat."""
        now = timeutil.now()
        pairs = [x for job_id, queue in running.items() for x in (queue, job_id)]
        keys = self.backend.keys
        self.backend.run("heartbeat", keys.worker(self.name), keys.workers, self.name,
                         int(self.timing.heartbeat_ttl) + 1, now + self.timing.heartbeat_ttl, len(stats), *stats,
                         *pairs)
        self.next_heartbeat = time.monotonic() + self.timing.heartbeat_interval

    def promote(self) -> float | None:
        """Move due scheduled jobs to their queues; the epoch time the next one is due."""
        now = timeutil.now()
        earliest = self.backend.run("promote", now, timeutil.iso(now), *self.queues)
        self.next_promote = time.monotonic() + self.timing.scheduler_interval
        return float(earliest) if earliest else None

    def run_pass(self) -> None:
        """At most one pass per interval among all workers (a lock with a TTL)."""
        self.next_pass = time.monotonic() + self.timing.maintenance_interval
        conn, keys = self.backend.connection, self.backend.keys
        if not conn.set(keys.maintenance, self.name, nx=True, px=int(self.timing.maintenance_interval * 1000)):
            return
        queues = sorted(text(q) for q in conn.smembers(keys.queues))
        now = timeutil.now()
        if queues:
            result = [text(x) for x in self.backend.run(
                "reap", now, timeutil.iso(now), self.timing.max_abandoned, now + 365 * 24 * 3600, *queues)]
            split = result.index("|")
            requeued, failed = result[:split], result[split + 1:]
            if requeued:
                log.warning("Requeued %d job(s) of dead workers: %s", len(requeued), ", ".join(requeued[:10]))
            if failed:
                log.warning("Moved %d job(s) abandoned too often to failed: %s", len(failed), ", ".join(failed[:10]))
                if self.on_abandoned:
                    self.on_abandoned(failed, "AbandonedJobError: abandoned by workers that died")
            self.backend.run("expire", now, *queues)
        self._forget_dead_workers()

    def _forget_dead_workers(self) -> None:
        conn, keys = self.backend.connection, self.backend.keys
        names = [text(n) for n in conn.smembers(keys.workers)]
        if not names:
            return
        pipe = conn.pipeline(transaction=False)
        for name in names:
            pipe.hget(keys.worker(name), "last_seen")
        oldest = timeutil.now() - 3 * self.timing.heartbeat_ttl
        dead = [n for n, seen in zip(names, pipe.execute()) if seen is None or float(seen) < oldest]
        if dead:  # a hash that outlived its TTL (re-created by a late write) goes too
            conn.delete(*[keys.worker(n) for n in dead])
            conn.srem(keys.workers, *dead)
