"""The worker: boot, register (and start the heartbeat thread), then loop
(record + dequeue, execute, wait) until the queues are empty (burst) or a
shutdown is requested, then shut down and register death.

Delivery promise: at-least-once, with one recorded outcome per job. Each
take of a job is a new attempt, entered in its started registry with a
deadline the heartbeat keeps ahead of Redis's clock; if the worker dies, is
paused or is cut off past the deadline, any live worker's maintenance pass
returns the job to its queue, and whatever the old attempt does afterwards
(outcome, writes, callbacks) is dropped: the heartbeat tells the worker,
which stops it.

Queues may live in several namespaces (say, shards on a Redis Cluster's
masters): the worker then has one lane per namespace (lane.py), each with its
own round trip, heartbeat, waker and maintenance, and takes turns among them.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from queue import SimpleQueue
from typing import Callable, Iterable

import redis

from ..backend import Backend
from ..connection import describe, wait_for_redis
from ..exceptions import AttemptSuperseded, JobQueueError
from ..imports import FunctionImporter
from ..job import Job
from ..keys import started_member
from ..queue import Queue
from .callbacks import Callbacks
from .driven import EventLoop, Events, next_event, settle_loop
from .execution import Outcome, Running, attempt_key, make_slots
from .outcome import refusal
from .heartbeat import Heartbeat
from .hold import Hold
from .lane import Lane, lanes_of, register_lanes
from .logs import guard
from .monitor import list_workers
from .recording import requeue_record, settle_record
from .shutdown import Shutdown
from .timing import Timing
from .waker import pass_token

log = guard(logging.getLogger("jobqueue.worker"))  # every module's lines: escaped, bounded arguments
REDIS_FAILED = redis.exceptions.RedisError  # unreachable, or refusing: OOM, READONLY, BUSY, LOADING, NOAUTH...


class Worker:
    def __init__(self, queues: Iterable[Queue | str] | Queue | str, connection: redis.Redis | Backend | None = None,
                 name: str | None = None, *, concurrency: int = 1, fork: bool = False, timing: Timing | None = None,
                 allowed_modules: Iterable[str] | None = None, allow_pickle: bool = False,
                 prefix: str | None = None, hold: Callable[[], str | None] | None = None,
                 threads: int | None = None, loop: EventLoop | None = None) -> None:
        """``concurrency`` jobs run at once; ``threads`` (default: as many) call
        their functions (a job that returns a Future holds a slot, not a
        thread). With ``loop``, the worker calls them itself and turns the loop
        whenever it would wait (driven.py). ``hold``: see hold.py. Queue names are queues of
        ``connection`` and ``prefix``; a Queue object keeps its own (its
        namespace may be another: each namespace is a lane)."""
        if isinstance(queues, (str, Queue)):
            queues = [queues]
        queues = list(queues)
        if queues and isinstance(queues[0], Queue) and (
                connection is None or (prefix is None and all(isinstance(q, Queue) for q in queues))):
            connection = queues[0].backend  # Queue objects name their namespaces: the worker needs none of its own
        self.backend = Backend.of(connection, prefix)
        self.connection = self.backend.connection
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.timing = timing or Timing.from_env()
        self.queues = [q if isinstance(q, Queue) else Queue(q, self.backend) for q in queues] or [Queue("default", self.backend)]
        self.queue_names = [q.name for q in self.queues]
        self.lanes = lanes_of(self.queues, self.name, self.timing, lambda *a: self.callbacks.on_abandoned(*a))
        if concurrency < 1:
            raise JobQueueError("concurrency must be at least 1")
        self.concurrency, self.fork = concurrency, fork
        self.serializers = {"json", "pickle"} if allow_pickle else {"json"}
        if loop is not None and fork:
            raise JobQueueError("a worker that drives an event loop runs its jobs on its own thread: not with fork")
        self.loop = loop
        self.events: SimpleQueue = Events(loop) if loop is not None else SimpleQueue()
        self.shutdown = Shutdown(self.events)
        self.slots = make_slots(concurrency if fork else min(threads or concurrency, concurrency), fork, self.events,
                                FunctionImporter(allowed_modules), [lane.backend for lane in self.lanes],
                                inline=loop is not None)
        self.callbacks = Callbacks(self.slots.importer, self.timing.callback_timeout)
        self.running: dict[str, Running] = {}  # by attempt key
        self._first_deadline = float("inf")    # no running job times out before this (monotonic)
        self.successful_job_count = self.failed_job_count = self.jobs_taken = 0
        self.total_working_time = 0.0
        self.hold = Hold(hold)
        self._turns = 0  # which lane asks first this turn

    # the first lane's parts, by their old names (a worker of one namespace has only that lane)
    round_trip = property(lambda self: self.lanes[0].round_trip)
    maintenance = property(lambda self: self.lanes[0].maintenance)
    heartbeat = property(lambda self: self.lanes[0].heartbeat)
    _waker = property(lambda self: self.lanes[0].waker)

    def __repr__(self) -> str:
        return f"Worker({self.name!r}, queues={self.queue_names})"

    # -- lifecycle -----------------------------------------------------------------------

    def work(self, burst: bool = False, max_jobs: int | None = None, logging_level: str | None = None) -> bool:
        """Process jobs until the queues are empty (burst), ``max_jobs`` were
        taken, or a shutdown signal; returns whether any job was taken."""
        if logging_level and not logging.getLogger().handlers:
            logging.basicConfig(level=logging_level, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
        self._boot()
        self._register_birth()
        try:
            self._loop(burst, max_jobs)
        except Exception:
            log.exception("Worker %s failed; returning its running jobs to their queue", self.name)
            self._return_running_jobs()
            raise
        finally:
            self._shut_down()
        return self.jobs_taken > 0

    all = staticmethod(list_workers)

    @staticmethod
    def count(connection: redis.Redis | Backend | None = None, *, queue: Queue | None = None,
              prefix: str | None = None) -> int:
        return len(list_workers(connection, queue=queue, prefix=prefix))

    def request_stop(self, cold: bool = False) -> None:
        """What a signal does, for embedders running the worker in a thread."""
        self.shutdown.request(cold)

    def _boot(self) -> None:
        if isinstance(self.events, Events):
            self.events.driver = threading.get_ident()  # the thread that turns the loop: work()'s
        first, *others = {id(lane.backend.connection): lane.backend.connection for lane in self.lanes}.values()
        wait_for_redis(first, self.timing.startup_wait, *others)  # one that answers is enough to start
        self.shutdown.install()
        mode = f"fork, {self.concurrency} work horse(s)" if self.fork else f"{self.concurrency} thread slot(s)" \
            if self.loop is None else f"{self.concurrency} slot(s) on its own thread, turning its jobs' loop"
        log.info("Worker %s started with PID %d (%s), Redis %s", self.name, os.getpid(), mode, describe(self.connection))
        several = len(self.lanes) > 1
        log.info("*** Listening on %s...", ", ".join(f"{q.backend.keys.prefix}{q.name}" if several else q.name
                                                     for lane in self.lanes for q in lane.queues))
        importer = self.slots.importer
        level = logging.WARNING if importer.anything else logging.INFO
        log.log(level, "Runs functions of %s%s", importer.describe(),
                "; anyone who can write to Redis can run code here" if importer.anything else "")

    def _register_birth(self) -> None:
        """Registered in every namespace it serves, by one heartbeat per lane
        (lane.register_lanes): it starts once one lane is registered."""
        for lane in self.lanes:
            registration = ["name", self.name, "hostname", socket.gethostname(), "pid", os.getpid(),
                            "queues", ",".join(lane.queue_names), "concurrency", self.concurrency,
                            "mode", "fork" if self.fork else "thread", "heartbeat_interval", self.timing.heartbeat_interval]
            lane.heartbeat = Heartbeat(lane.backend, self.name, self.timing, self.events, registration,
                                       attempts=lambda lane=lane: self._beating(lane), stats=self._stats,
                                       answered=lane.heartbeat_answered)
        register_lanes(self.lanes, lambda: self.shutdown.stop_fetching)

    def _beating(self, lane: Lane) -> list[tuple[str, str]]:
        """(queue, attempt key) of the lane's attempts whose deadlines its
        heartbeat extends: those running, and those whose outcome is not yet
        recorded (a round trip delayed by a Redis outage must not get them
        reaped and run again)."""
        beating = {(r.queue, started_member(r.job.id, r.job.attempt)) for r in list(self.running.values())
                   if r.state == "running" and r.lane is lane}
        beating.update((o["q"], started_member(o["id"], o["a"])) for o in list(lane.round_trip.outcomes))
        return sorted(beating)

    def _loop(self, burst: bool, max_jobs: int | None) -> None:
        while True:
            if self.shutdown.cold:
                self._return_running_jobs()
            self._enforce_timeouts()
            self.callbacks.check()
            want = self._free_slots(max_jobs)
            fetched, left, failing = self._turn(want, burst)
            if failing and (self.shutdown.cold or (self.shutdown.stop_fetching and not self._active())):
                return  # stopping: _shut_down records what it can; the reaper returns what was started
            queues_empty = left > 0 and not failing  # every lane asked found less than it asked for
            finished = not self._active() and not any(lane.round_trip.outcomes for lane in self.lanes)
            if finished and (self.shutdown.stop_fetching or (burst and queues_empty)
                             or (max_jobs is not None and self.jobs_taken >= max_jobs)):
                return
            if fetched and left == 0:
                continue  # slots may still be free: fetch again before waiting
            if not burst and left > 0 and not self.shutdown.stop_fetching:
                for lane in self.lanes:
                    if lane.proven_empty:
                        lane.arm_waker(self.events)
            self._wait()

    def _turn(self, want: int, burst: bool) -> tuple[int, int, bool]:
        """One round trip per lane that has outcomes to record or may have
        work; lanes take turns at asking first, so a fleet spreads its load
        over the namespaces. A lane that fails backs off on its own (Redis
        errors of any kind: unreachable, OOM, READONLY, BUSY...) while the
        others go on. Each lane's jobs start (and so are kept alive by its
        heartbeat) before the next lane is asked: that one may stall. Returns
        (how many were fetched, how many of ``want`` are left, whether a lane
        is failing)."""
        fetched, left, failing = 0, want, False
        start = self._turns % len(self.lanes)
        self._turns += want > 0
        for lane in self.lanes[start:] + self.lanes[:start]:
            if lane.outage.since is not None and time.monotonic() < lane.next_try():
                failing = True
                continue
            ask = left if left > 0 and lane.worth_asking(burst) else 0
            try:
                lane.tick(busy=bool(self.running))
                got = self._record_and_dequeue(lane, ask)
            except REDIS_FAILED as exc:
                lane.failed(exc, len(self._active()))
                self._enforce_timeouts()
                failing = True
                continue
            # a fetch that found less than it asked for proves its queues empty, our own retries included:
            # it runs in the same script as, and after, the finish that pushed them (finish+fetch)
            if ask > 0:
                lane.proven_empty = len(got) < ask
            for queue, job in got:
                self._execute(lane, queue, job)
            fetched += len(got)
            left -= len(got)
        return fetched, left, failing

    def _shut_down(self) -> None:
        if self.shutdown.cold:
            self._return_running_jobs()
        settle_loop(self.loop, 2.0)
        for lane in self.lanes:
            for attempt in range(5):  # record what finished; if Redis stays down, the reaper re-runs those jobs
                try:
                    self._record_and_dequeue(lane, 0)
                    break
                except REDIS_FAILED as exc:
                    log.warning("Could not record %d outcome(s) (%s); retrying", len(lane.round_trip.outcomes), exc)
                    time.sleep(0.5 * (attempt + 1))
        self.callbacks.wait()
        for lane in self.lanes:
            lane.register_death()
        self.shutdown.uninstall()
        self.slots.close()
        for lane in self.lanes:
            lane.close()
        log.info("Worker %s: done (%d ok, %d failed), quitting", self.name, self.successful_job_count, self.failed_job_count)

    # -- dequeue and record --------------------------------------------------------------

    def _active(self) -> list[Running]:
        """Attempts whose outcome is still to come (not those only holding a slot)."""
        return [r for r in self.running.values() if r.state == "running"]

    def _free_slots(self, max_jobs: int | None) -> int:
        if self.shutdown.stop_fetching or self.hold():
            return 0
        free = self.concurrency - len(self.running)  # a stopped attempt holds its slot until its code returns
        if max_jobs is not None:
            free = min(free, max_jobs - self.jobs_taken)
        return max(free, 0)

    def _record_and_dequeue(self, lane: Lane, want: int) -> list[tuple[str, Job]]:
        """One round trip to a lane: record what finished there, take up to ``want`` jobs."""
        if want <= 0 and not lane.round_trip.outcomes:
            return []  # nothing to say to Redis
        fetched, dropped, recorded = lane.round_trip(want, lane.woken, lane.stats_due(self._stats))
        for record in dropped:
            log.warning("%s: outcome of job %s (attempt %s) dropped: the attempt is no longer current (reaped, "
                        "canceled, taken again) or its hash was quarantined", record["q"], record["id"], record["a"])
        for job, exc_info in recorded:
            self.callbacks.on_failure(job, exc_info)
        if lane.round_trip.met_poison:
            lane.maintenance.report_quarantine()
        lane.woken = False
        lane.outage.recovered()
        self.jobs_taken += len(fetched)
        return fetched

    def _stats(self) -> list:
        """Counters (the scripts add last_seen / last_heartbeat on Redis's clock)."""
        return ["successful_job_count", self.successful_job_count, "failed_job_count", self.failed_job_count,
                "total_working_time", round(self.total_working_time, 6)]

    # -- execute ---------------------------------------------------------------------------

    def _execute(self, lane: Lane, queue: str, job: Job) -> None:
        refused = refusal(job, self.serializers)
        if refused is not None:
            self._settle(Running(job, queue, lane, None), refused)
            return
        timeout = job.timeout
        deadline = time.monotonic() + timeout if timeout and timeout > 0 else None
        self.running[attempt_key(job)] = Running(job, queue, lane, deadline)
        if deadline is not None:
            self._first_deadline = min(self._first_deadline, deadline)
        if log.isEnabledFor(logging.INFO):  # (a description decodes the job's arguments: not for a quiet worker)
            log.info("%s: %s (%s)", queue, job.description, job.id)
        self.slots.start(job)

    def _settle(self, running: Running, outcome: Outcome) -> None:
        """Take the attempt's outcome for recording; its slot stays held while its code still runs."""
        job = running.job
        running.state = "settled"
        self.total_working_time += outcome.duration
        record = settle_record(job, running.queue, outcome)
        round_trip = running.lane.round_trip
        round_trip.outcomes.append(record)
        if outcome.ok:
            # a failed job's writes are dropped here, and only here
            round_trip.writes += [(job, running.queue, script, argv) for script, argv in outcome.writes]
            self.successful_job_count += 1
            log.info("%s: Job OK (%s)", running.queue, job.id)
            ttl = record["ttl"]
            log.debug("Result is kept for %s", "ever" if ttl < 0 else f"{ttl} seconds")
        elif outcome.postpone is not None:
            log.debug("%s: Job postponed for %.1f s (%s): %s", running.queue, outcome.postpone, job.id,
                     ((outcome.exc_info or "").strip().splitlines() or [""])[-1])
        else:
            self.failed_job_count += 1
            last_line = (outcome.exc_info or "").strip().splitlines()[-1:] or ["?"]
            retrying = "; will retry" if record["s"] == "retry" else ""
            log.warning("%s: Job failed (%s): %s%s", running.queue, job.id, last_line[0], retrying)
            if record["s"] == "failed" and not outcome.refused:
                round_trip.failures.append((job, outcome.exc_info or ""))

    def _enforce_timeouts(self) -> None:
        now = time.monotonic()
        if now < self._first_deadline:  # (a scan per turn would cost a look at every running job)
            return
        self._first_deadline = float("inf")
        for key, running in list(self.running.items()):
            if running.state != "running" or running.deadline is None:
                continue
            if running.deadline <= now:
                self.slots.stop(key)
                self._settle(running, Outcome(key, False, None, "JobTimeoutError: Task exceeded maximum timeout "
                                              f"value ({running.job.timeout} seconds)", running.job.timeout or 0))
            else:
                self._first_deadline = min(self._first_deadline, running.deadline)

    def _return_running_jobs(self) -> None:
        for key, running in list(self.running.items()):
            if running.state == "running":
                self.slots.stop(key)
                running.state = "settled"
                running.lane.round_trip.outcomes.append(requeue_record(running.job, running.queue))
                log.warning("%s: job %s returned to its queue", running.queue, running.job.id)

    def _supersede(self, keys: list[str]) -> None:
        """The heartbeat found these attempts no longer current: stop them; their outcomes will be dropped."""
        for key in keys:
            running = self.running.get(key)
            if running is None or running.state != "running":
                continue
            running.state = "superseded"
            running.lane.proven_empty = False
            running.job._superseded = True
            self.slots.stop(key, AttemptSuperseded)
            log.warning("%s: job %s (attempt %s) is no longer current (reaped, canceled or taken again): "
                        "stopped, its outcome will be dropped", running.queue, running.job.id, running.job.attempt)

    # -- wait and handle events ----------------------------------------------------------------

    def _wait(self) -> None:
        """Block until an event (job done, wake-up token, signal) or the next
        timer: a timeout, a lane's maintenance, a scheduled job coming due, the
        end of a failing lane's backoff. Then linger: jobs started together
        tend to end together, and a round trip costs Redis far more than a job
        in it, so running jobs get ``timing.linger`` (2 ms) to join the next."""
        wake_at = [r.deadline for r in self._active() if r.deadline is not None]
        wake_at += [t for lane in self.lanes for t in lane.timers()]
        event = next_event(self.events, self.loop, max(0.0, min(wake_at) - time.monotonic()))
        linger = time.monotonic() + self.timing.linger
        while event is not None:
            self._handle(event)
            event = next_event(self.events, self.loop, linger - time.monotonic() if self._active() else 0.0)

    def _handle(self, event: tuple) -> None:
        kind, payload = event
        if kind == "done":
            running = self.running.pop(payload.key, None)  # the slot is free: the attempt's code returned
            if running is None:
                return
            running.lane.proven_empty = False  # its outcome goes out anyway: the fetch rides along
            if running.state == "running":
                self._settle(running, payload)
            elif running.state == "superseded":
                log.info("%s: superseded attempt of job %s ended; its outcome is dropped", running.queue,
                         running.job.id)
        elif kind == "superseded":
            self._supersede(payload)
        elif kind == "wake" and payload[1]:
            lane, key = payload
            if self._free_slots(None) == 0:
                pass_token(lane.backend.connection, key)  # we cannot use it: leave it for another worker
            else:
                lane.woken = True
                lane.proven_empty = False
