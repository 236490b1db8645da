"""A lane: one namespace (key prefix, on one Redis or one cluster slot) a
worker takes jobs from, with everything that talks to it: its round trip,
maintenance, heartbeat and waker, and whether it has work or is failing.

A worker whose queues live in several namespaces (shards on the masters of a
Redis Cluster, say) has one lane per namespace. No script call ever spans two
lanes, so none crosses a slot; and one lane failing (its master down or cut
off) holds up no other: it backs off on its own."""

from __future__ import annotations

import logging
import time
from queue import SimpleQueue
from typing import Callable

import redis

from ..backend import Backend
from ..exceptions import JobQueueError
from ..queue import Queue
from .heartbeat import Heartbeat
from .maintenance import Maintenance
from .outage import Outage
from .round_trip import RoundTrip
from .timing import Timing
from .waker import Waker

log = logging.getLogger("jobqueue.worker")
HEARTBEAT_WAIT = 30.0  # s: a failing lane of several tries again by then, whatever its heartbeat saw


class Lane:
    def __init__(self, backend: Backend, queues: list[Queue], worker: str, timing: Timing,
                 on_abandoned: Callable[[Backend, list[str], str], None], several: bool = False) -> None:
        self.backend, self.queues, self.worker, self.timing = backend, queues, worker, timing
        self.queue_names = [q.name for q in queues]
        self.round_trip = RoundTrip(backend, worker, self.queue_names, timing.heartbeat_ttl)
        self.maintenance = Maintenance(backend, worker, self.queue_names, timing,
                                       on_abandoned=lambda ids, why: on_abandoned(backend, ids, why))
        self.heartbeat: Heartbeat | None = None
        self.waker: Waker | None = None
        self.outage = Outage(f" (namespace {backend.keys.prefix!r})" if several else "")
        self.retry_at = 0.0          # monotonic: after a failed round trip, not before this
        self.failed_at = 0.0         # monotonic: when the last round trip (or registration) failed
        self.answered_at = 0.0       # monotonic: when its heartbeat last had an answer
        self.waits_for_heartbeat = several  # one of several lanes: see next_try
        self.woken = False           # a wake-up token brought us here: pass it on if work is left
        self.proven_empty = False    # our last fetch found the queues empty, and nothing has stirred since
        self.next_poll = 0.0         # ... yet we ask again at this time (a token may die with its worker)
        self.next_scheduled: float | None = None  # the earliest scheduled job we know of is due (monotonic)
        self.next_stats = 0.0

    def __repr__(self) -> str:
        return f"Lane({self.backend.keys.prefix!r}, {self.queue_names})"

    def register(self) -> bool:
        """One try at the heartbeat's first beat, which registers the worker
        here; False if Redis refused or did not answer (a replica before its
        failover, MASTERDOWN, OOM, a master cut off): the lane is then failing,
        and a later beat registers it once Redis answers."""
        try:
            if self.backend.connection.exists(self.backend.keys.worker(self.worker)):
                raise JobQueueError(f"a worker named {self.worker!r} is already alive; pick another --name")
            self.heartbeat.beat()
        except redis.exceptions.RedisError as exc:
            self.failed(exc, 0)
            return False
        self.outage.recovered()
        return True

    def register_death(self) -> None:
        if self.heartbeat is not None:  # stopped first: a late beat would register the worker again
            self.heartbeat.stop()
            self.heartbeat.join(timeout=5)
        try:
            self.maintenance.report_quarantine()  # what this worker's last calls moved out of the way
            pipe = self.backend.connection.pipeline(transaction=True)  # hash and set entry go together
            pipe.delete(self.backend.keys.worker(self.worker))
            pipe.srem(self.backend.keys.workers, self.worker)
            pipe.execute()
        except redis.exceptions.RedisError:
            log.warning("Could not register death; the worker entry will expire by itself")

    def worth_asking(self, burst: bool) -> bool:
        """Whether to ask Redis for jobs now. An idle worker whose last fetch
        found its queues empty asks again only once something may have brought
        work: a wake-up token (every push onto an empty queue leaves one), a
        job of its own ending, a round trip that failed; or, in case a token
        died with a worker that took it, once every maintenance interval. So
        an idle fleet costs Redis its blocking waits, not polls."""
        now = time.monotonic()
        if not burst and self.proven_empty and not self.woken and now < self.next_poll:
            return False
        self.next_poll = now + self.timing.maintenance_interval
        return True

    def tick(self, busy: bool) -> None:
        """Promote due scheduled jobs and run the maintenance pass, when due."""
        now, m = time.monotonic(), self.maintenance
        if now >= m.next_promote or self.woken or (self.next_scheduled is not None and now >= self.next_scheduled):
            self.next_scheduled = m.promote(busy=busy)
        if now >= m.next_pass:
            m.run_pass()

    def timers(self) -> list[float]:
        """When this lane next needs the loop (monotonic): a failing lane,
        only at the end of its backoff."""
        if self.outage.since is not None:  # (waiting for its heartbeat: looked at every scheduler interval)
            return [min(self.next_try(), max(self.retry_at, time.monotonic() + self.timing.scheduler_interval))]
        m = self.maintenance
        return [m.next_promote, m.next_pass, *([self.next_scheduled] if self.next_scheduled else [])]

    def failed(self, exc: Exception, running: int) -> float:
        """A round trip failed: back off (jittered, doubling, capped); returns the pause."""
        self.proven_empty = False
        pause = self.outage.failed(exc, running, len(self.round_trip.outcomes))
        self.failed_at = time.monotonic()
        self.retry_at = self.failed_at + pause
        return pause

    def next_try(self) -> float:
        """When a failing lane may call Redis again (monotonic): after its
        backoff; and, for one of several lanes, once its heartbeat (a thread
        of its own) has had an answer since the failure, or HEARTBEAT_WAIT
        later. A Redis that stalls then holds up the worker's loop, and so the
        other lanes, for one socket timeout, not one at every try."""
        if not self.waits_for_heartbeat or self.answered_at > self.failed_at:
            return self.retry_at
        return max(self.retry_at, self.failed_at + HEARTBEAT_WAIT)

    def heartbeat_answered(self) -> None:
        """Noted on the heartbeat's thread; the loop looks every scheduler
        interval (a second by default)."""
        self.answered_at = time.monotonic()

    def stats_due(self, stats: Callable[[], list]) -> list:
        """Counters ride along with a finish call at most once a second."""
        if time.monotonic() < self.next_stats:
            return []
        self.next_stats = time.monotonic() + 1.0
        return [self.backend.keys.worker(self.worker), *stats()]

    def arm_waker(self, events: SimpleQueue) -> None:
        if self.waker is None:
            self.waker = Waker(self.backend, self.queue_names, events, self.timing.idle_block, owner=self)
            self.waker.start()
        self.waker.armed.set()

    def close(self) -> None:
        if self.waker is not None:
            self.waker.close()
        self.round_trip.close()


def lanes_of(queues: list[Queue], worker: str, timing: Timing,
             on_abandoned: Callable[[Backend, list[str], str], None]) -> list[Lane]:
    """One lane per namespace (connection and prefix), in the order the queues
    name them; within a lane, queues keep their order (their priority)."""
    groups: dict[tuple[int, str], list[Queue]] = {}
    for q in queues:
        groups.setdefault((id(q.backend.connection), q.backend.keys.prefix), []).append(q)
    return [Lane(group[0].backend, group, worker, timing, on_abandoned, several=len(groups) > 1)
            for group in groups.values()]


def register_lanes(lanes: list[Lane], stopping: Callable[[], bool]) -> None:
    """The first beat of each lane's heartbeat registers the worker there;
    any later beat that finds the entry gone (expired while cut off)
    registers it again, whole. One heartbeat per lane: a stalled master
    delays no other lane's deadlines. The worker starts once one lane is
    registered: a namespace that does not answer yet holds up no other, its
    lane backs off and joins when its Redis answers."""
    waiting = list(lanes)
    while True:
        waiting = [lane for lane in waiting if not lane.register()]
        if len(waiting) < len(lanes):
            break
        if stopping():
            raise JobQueueError("could not register with Redis; stopping as asked")
        time.sleep(max(0.0, min(lane.retry_at for lane in waiting) - time.monotonic()))
    for lane in lanes:
        lane.heartbeat.start()
