"""Housekeeping any worker does for all: promoting due scheduled jobs,
returning dead workers' jobs to their queues, deleting expired results,
forgetting dead workers. Every time involved is Redis's (TIME in the
scripts), so a worker whose clock is off judges nobody wrongly."""

from __future__ import annotations

import logging
import time
from typing import Callable

import redis

from ..backend import Backend, text, wrong_type
from .timing import Timing

log = logging.getLogger("jobqueue.worker")


class Maintenance:
    def __init__(self, backend: Backend, worker_name: str, queues: list[str], timing: Timing,
                 on_abandoned: Callable[[list[str], str], None] | None = None) -> None:
        self.backend, self.name, self.queues, self.timing = backend, worker_name, queues, timing
        self.on_abandoned = on_abandoned  # told which jobs the reaper failed
        self.next_promote = 0.0
        self.next_pass = 0.0
        self.grace_logged = False

    def promote(self, busy: bool = True) -> float | None:
        """Move due scheduled jobs to their queues; returns the monotonic time
        the next one is due (from Redis's clock: ours may be off). A busy
        worker looks every scheduler interval; an idle one when a wake-up
        token comes (scheduling a job leaves one), when the earliest job it
        knows of is due, and else once every maintenance interval (should
        the worker that knew of a job have died)."""
        interval = self.timing.scheduler_interval if busy else self.timing.maintenance_interval
        self.next_promote = time.monotonic() + interval  # also when the call fails
        due_in = self.backend.run("promote", *self.queues)
        return None if due_in is None else time.monotonic() + float(due_in)

    def run_pass(self) -> None:
        """At most one pass per interval among all workers (a lock with a TTL)."""
        self.next_pass = time.monotonic() + self.timing.maintenance_interval
        conn, keys = self.backend.connection, self.backend.keys
        lease = int(self.timing.maintenance_interval * 1000)
        if not conn.set(keys.maintenance, self.name, nx=True, px=lease):
            if conn.pttl(keys.maintenance) == -1:  # not our lock (ours always expire): it must not stop every pass
                log.warning("The maintenance lock %s has no expiry (set by hand?); it now expires", keys.maintenance)
                conn.pexpire(keys.maintenance, lease)
            return
        try:
            queues = sorted({text(q) for q in conn.smembers(keys.queues)} | set(self.queues))
        except redis.exceptions.ResponseError as exc:  # not a set (the next push onto an empty queue quarantines it)
            if not wrong_type(exc):
                raise
            queues = sorted(self.queues)
        if queues:
            t = self.timing
            result = [text(x) for x in self.backend.run(
                "reap", t.max_abandoned, 365 * 24 * 3600, keys.clock, t.heartbeat_interval, t.outage_grace, *queues)]
            first, second = result.index("|"), len(result) - 2
            requeued, failed, grace_left = result[:first], result[first + 1:second], float(result[-1])
            if grace_left > 0 and not self.grace_logged:  # news, not trouble: it is also every fresh start
                log.info("No heartbeat reached Redis for a while (no worker was running, or Redis was down, "
                         "restarted or stalled): dead workers' jobs are reaped after %.1f s of grace", grace_left)
            self.grace_logged = grace_left > 0
            if requeued:
                log.warning("Requeued %d job(s) of dead workers: %s", len(requeued), ", ".join(requeued[:10]))
            if failed:
                log.warning("Moved %d job(s) abandoned too often to failed: %s", len(failed), ", ".join(failed[:10]))
                if self.on_abandoned:
                    self.on_abandoned(failed, "AbandonedJobError: abandoned by workers that died")
            self.backend.run("expire", *queues)
        self._forget_dead_workers()
        self.report_quarantine()

    def report_quarantine(self) -> None:
        """Keys the scripts moved out of the way that no worker has said yet,
        said once among all workers: GETSET claims them."""
        conn, keys = self.backend.connection, self.backend.keys
        count = conn.llen(keys.quarantine)
        said = int(conn.getset(keys.quarantine_said, count) or 0)
        said = min(said, count)  # the list was trimmed or emptied by hand
        if count > said:
            for note in conn.lrange(keys.quarantine, said - count, -1):
                log.error("Quarantined a key that is not what jobqueue expects (inspect or delete it): %s", text(note))

    def _forget_dead_workers(self) -> None:
        conn, keys = self.backend.connection, self.backend.keys
        try:
            names = [text(n) for n in conn.smembers(keys.workers)]
        except redis.exceptions.ResponseError as exc:  # not a set: the next heartbeat quarantines it
            if not wrong_type(exc):
                raise
            return
        if not names:
            return
        pipe = conn.pipeline(transaction=False)
        for name in names:
            pipe.hget(keys.worker(name), "last_seen")
        oldest = self.backend.time() - 3 * self.timing.heartbeat_ttl  # Redis's clock, which wrote last_seen
        dead = [n for n, seen in zip(names, pipe.execute()) if seen is None or _float(seen) < oldest]
        if dead:  # a hash that outlived its TTL (re-created by a late write) goes too
            conn.delete(*[keys.worker(n) for n in dead])
            conn.srem(keys.workers, *dead)


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("-inf")  # a corrupted entry counts as long dead
