"""The worker: boot, register, then loop (record + dequeue, execute, wait,
heartbeat) until the queues are empty (burst) or a shutdown is requested,
then shut down and register death.

Delivery promise: at-least-once. A job leaves its queue only together with
an entry in its started registry whose deadline this worker keeps moving
forward; if the worker dies at any instant, any live worker's maintenance
pass returns the job to its queue once the deadline passes.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import Iterable

import redis

from .. import timeutil
from ..backend import Backend, text, text_dict
from ..connection import check as check_connection
from ..connection import describe
from ..exceptions import JobQueueError
from ..imports import FunctionImporter
from ..job import Job
from ..queue import Queue
from .callbacks import call_on_failure
from .execution import Outcome, make_slots
from .maintenance import Maintenance
from .monitor import list_workers
from .recording import batch_writes, report_write_errors, requeue_record, settle_record
from .shutdown import Shutdown
from .timing import Timing
from .waker import Waker

log = logging.getLogger("jobqueue.worker")
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


@dataclass
class Running:
    job: Job
    queue: str
    deadline: float | None   # monotonic; None = no timeout


class Worker:
    def __init__(self, queues: Iterable[Queue | str] | Queue | str, connection: redis.Redis | Backend | None = None,
                 name: str | None = None, *, concurrency: int = 1, fork: bool = False, timing: Timing | None = None,
                 allowed_modules: Iterable[str] | None = None, allow_pickle: bool = False,
                 prefix: str | None = None) -> None:
        if isinstance(queues, (str, Queue)):
            queues = [queues]
        queues = list(queues)
        if connection is None and queues and isinstance(queues[0], Queue):
            connection = queues[0].backend
        self.backend = Backend.of(connection, prefix)
        self.connection = self.backend.connection
        self.queues = [q if isinstance(q, Queue) else Queue(q, self.backend) for q in queues] or [Queue("default", self.backend)]
        self.queue_names = [q.name for q in self.queues]
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        if concurrency < 1:
            raise JobQueueError("concurrency must be at least 1")
        self.concurrency, self.fork = concurrency, fork
        self.timing = timing or Timing.from_env()
        self.serializers = {"json", "pickle"} if allow_pickle else {"json"}
        self.events: SimpleQueue = SimpleQueue()
        self.shutdown = Shutdown(self.events)
        self.slots = make_slots(concurrency, fork, self.events, FunctionImporter(allowed_modules), self.backend)
        self.maintenance = Maintenance(self.backend, self.name, self.queue_names, self.timing,
                                       on_abandoned=self._abandoned_jobs_failed)
        self.running: dict[str, Running] = {}
        self.pending: list[dict] = []      # outcomes not yet written to Redis
        self.pending_writes: list = []     # Job.write_on_success calls of those outcomes
        self.successful_job_count = self.failed_job_count = self.jobs_taken = 0
        self.total_working_time = 0.0
        self._waker: Waker | None = None
        self._next_scheduled: float | None = None
        self._redis_down_since: float | None = None
        self._woken = False        # a wake-up token brought us here: pass it on if work is left
        self._next_stats = 0.0

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
        check_connection(self.connection)
        self.shutdown.install()
        mode = f"fork, {self.concurrency} work horse(s)" if self.fork else f"{self.concurrency} thread slot(s)"
        log.info("Worker %s started with PID %d (%s), Redis %s", self.name, os.getpid(), mode, describe(self.connection))
        log.info("*** Listening on %s...", ", ".join(self.queue_names))

    def _register_birth(self) -> None:
        keys, now = self.backend.keys, timeutil.now()
        if self.connection.exists(keys.worker(self.name)):
            raise JobQueueError(f"a worker named {self.name!r} is already alive; pick another --name")
        pipe = self.connection.pipeline(transaction=True)  # the hash and the set entry appear together
        pipe.hset(keys.worker(self.name), mapping={
            "name": self.name, "hostname": socket.gethostname(), "pid": os.getpid(),
            "queues": ",".join(self.queue_names), "birth": timeutil.iso(now), "last_heartbeat": timeutil.iso(now),
            "last_seen": now, "concurrency": self.concurrency, "mode": "fork" if self.fork else "thread",
            "successful_job_count": 0, "failed_job_count": 0, "total_working_time": 0,
        })
        pipe.expire(keys.worker(self.name), int(self.timing.heartbeat_ttl) + 1)
        pipe.sadd(keys.workers, self.name)
        pipe.execute()
        self.maintenance.next_heartbeat = time.monotonic() + self.timing.heartbeat_interval

    def _loop(self, burst: bool, max_jobs: int | None) -> None:
        while True:
            if self.shutdown.cold:
                self._return_running_jobs()
            self._enforce_timeouts()
            want = self._free_slots(max_jobs)
            recording = bool(self.pending)
            try:
                self._tick()
                fetched = self._record_and_dequeue(want)
            except REDIS_DOWN as exc:
                if self.shutdown.cold:
                    return  # nothing more can be recorded; the reaper returns what was started
                self._redis_is_down(exc)
                continue
            for queue, job in fetched:
                self._execute(queue, job)
            # burst: only a fetch in a round trip without our own outcomes proves the queues empty (after
            # a NOSCRIPT the round trip replays finish after fetch, so a retry it pushed came too late)
            unproven = burst and recording
            queues_empty = len(fetched) < want and not unproven
            finished = not self.running and not self.pending
            if finished and (self.shutdown.stop_fetching or (burst and queues_empty)
                             or (max_jobs is not None and self.jobs_taken >= max_jobs)):
                return
            if (fetched or unproven) and not queues_empty:
                continue  # slots may still be free: fetch again before waiting
            if not burst and want > 0 and queues_empty and not self.shutdown.stop_fetching:
                self._arm_waker()
            self._wait()

    def _shut_down(self) -> None:
        if self.shutdown.cold:
            self._return_running_jobs()
        for attempt in range(5):  # record what finished; if Redis stays down, the reaper re-runs those jobs
            try:
                self._record_and_dequeue(0)
                break
            except REDIS_DOWN as exc:
                log.warning("Could not record %d outcome(s) (%s); retrying", len(self.pending), exc)
                time.sleep(0.5 * (attempt + 1))
        try:
            pipe = self.connection.pipeline(transaction=True)  # hash and set entry go together
            pipe.delete(self.backend.keys.worker(self.name))
            pipe.srem(self.backend.keys.workers, self.name)
            pipe.execute()
        except REDIS_DOWN:
            log.warning("Could not register death; the worker entry will expire by itself")
        self.shutdown.uninstall()
        self.slots.close()
        if self._waker is not None:
            self._waker.close()
        log.info("Worker %s: done (%d ok, %d failed), quitting", self.name, self.successful_job_count, self.failed_job_count)

    # -- dequeue and record --------------------------------------------------------------

    def _free_slots(self, max_jobs: int | None) -> int:
        if self.shutdown.stop_fetching:
            return 0
        free = self.concurrency - len(self.running)
        if max_jobs is not None:
            free = min(free, max_jobs - self.jobs_taken)
        return max(free, 0)

    def _record_and_dequeue(self, want: int) -> list[tuple[str, Job]]:
        """One round trip: write finished outcomes, then take up to ``want`` jobs."""
        writes = batch_writes(self.pending_writes)
        calls = list(writes)  # before the finish (but replayed after it if Redis had forgotten the script)
        if self.pending:
            calls.append(("finish", [json.dumps(self.pending), *self._stats_due()]))
        if want > 0:
            now = timeutil.now()
            calls.append(("fetch", [self.name, now + self.timing.heartbeat_ttl, timeutil.iso(now), want,
                                    "1" if self._woken else "0", *self.queue_names]))
        if not calls:
            return []
        results = (self.backend.run.many(calls, raise_on_error=False) if len(calls) > 1
                   else [self.backend.run(calls[0][0], *calls[0][1])])
        report_write_errors(writes, results[:len(writes)])
        for result in results[len(writes):]:  # jobqueue's own: an error here is not the application's
            if isinstance(result, Exception):
                raise result
        self.pending, self.pending_writes = [], []
        self._woken = False
        self._redis_back()
        if want <= 0:
            return []
        flat, fetched = results[-1], []
        for i in range(0, len(flat), 3):
            fields = text_dict(flat[i + 2])
            fields["id"] = text(flat[i + 1])
            fetched.append((text(flat[i]), Job.from_fields(self.backend, fields)))
        self.jobs_taken += len(fetched)
        return fetched

    def _stats_due(self) -> list:
        """Counters ride along with a finish call at most once a second."""
        if time.monotonic() < self._next_stats:
            return []
        self._next_stats = time.monotonic() + 1.0
        return [self.backend.keys.worker(self.name), *self._stats()]

    def _stats(self) -> list:
        now = timeutil.now()
        return ["successful_job_count", self.successful_job_count, "failed_job_count", self.failed_job_count,
                "total_working_time", round(self.total_working_time, 6), "last_seen", now,
                "last_heartbeat", timeutil.iso(now)]

    # -- execute ---------------------------------------------------------------------------

    def _execute(self, queue: str, job: Job) -> None:
        try:
            timeout = job.timeout
            if job.serializer.name not in self.serializers:
                raise JobQueueError(f"job uses the {job.serializer.name} serializer, which this worker does not "
                                    "accept; start the worker with --allow-pickle to run it")
            if not job.func_name:
                raise JobQueueError("job hash has no 'func' field (corrupted); delete the job")
        except Exception as exc:
            running = Running(job, queue, None)
            self.running[job.id] = running
            msg = exc if isinstance(exc, JobQueueError) else f"job hash is corrupted ({exc!r}); delete or re-enqueue it"
            self._settle(running, Outcome(job.id, False, None, f"{type(exc).__name__}: {msg}"))
            return
        deadline = time.monotonic() + timeout if timeout and timeout > 0 else None
        self.running[job.id] = Running(job, queue, deadline)
        log.info("%s: %s (%s)", queue, job.description, job.id)
        self.slots.start(job)

    def _settle(self, running: Running, outcome: Outcome) -> None:
        job = running.job
        self.running.pop(job.id, None)
        self.total_working_time += outcome.duration
        record = settle_record(job, running.queue, outcome, timeutil.now())
        self.pending.append(record)
        if outcome.ok:
            self.pending_writes += outcome.writes  # a failed job's writes are dropped here, and only here
            self.successful_job_count += 1
            log.info("%s: Job OK (%s)", running.queue, job.id)
            ttl = job.result_ttl
            log.debug("Result is kept for %s", "ever" if ttl is not None and ttl < 0 else f"{ttl} seconds")
        else:
            self.failed_job_count += 1
            last_line = (outcome.exc_info or "").strip().splitlines()[-1:] or ["?"]
            retrying = "; will retry" if record["s"] == "retry" else ""
            log.warning("%s: Job failed (%s): %s%s", running.queue, job.id, last_line[0], retrying)
            if record["s"] == "failed":
                call_on_failure(job, self.slots.importer, outcome.exc_info or "")

    def _abandoned_jobs_failed(self, job_ids: list[str], reason: str) -> None:
        for job in Job.fetch_many(job_ids, self.backend):
            if job is not None:
                call_on_failure(job, self.slots.importer, job.exc_info or reason)

    def _enforce_timeouts(self) -> None:
        now = time.monotonic()
        for job_id, running in list(self.running.items()):
            if running.deadline is not None and running.deadline <= now:
                self.slots.stop(job_id)
                self._settle(running, Outcome(job_id, False, None, "JobTimeoutError: Task exceeded maximum timeout "
                                              f"value ({running.job.timeout} seconds)", running.job.timeout or 0))

    def _return_running_jobs(self) -> None:
        now = timeutil.now()
        for job_id, running in list(self.running.items()):
            self.slots.stop(job_id)
            self.pending.append(requeue_record(job_id, running.queue, now))
            log.warning("%s: job %s returned to its queue", running.queue, job_id)
        self.running.clear()

    # -- wait, heartbeat, maintenance ---------------------------------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        m = self.maintenance
        if now >= m.next_heartbeat:
            m.heartbeat({job_id: r.queue for job_id, r in self.running.items()}, self._stats())
        if now >= m.next_promote or (self._next_scheduled is not None and timeutil.now() >= self._next_scheduled):
            self._next_scheduled = m.promote()
        if now >= m.next_pass:
            m.run_pass()

    def _wait(self, longest: float | None = None) -> None:
        """Block until an event (job done, wake-up token, signal) or the next timer."""
        m = self.maintenance
        wake_at = [m.next_heartbeat, m.next_promote, m.next_pass]
        wake_at += [r.deadline for r in self.running.values() if r.deadline is not None]
        timeout = max(0.0, min(wake_at) - time.monotonic())
        if longest is not None:
            timeout = min(timeout, longest)
        try:
            event = self.events.get(timeout=timeout)
        except Empty:
            return
        while True:
            self._handle(event)
            try:
                event = self.events.get_nowait()
            except Empty:
                return

    def _handle(self, event: tuple) -> None:
        kind, payload = event
        if kind == "done":
            running = self.running.get(payload.job_id)
            if running is not None:  # else: already settled (timed out, or returned by a cold shutdown)
                self._settle(running, payload)
        elif kind == "wake" and payload:
            if self._free_slots(None) == 0:
                self._pass_wake_token(payload)
            else:
                self._woken = True

    def _arm_waker(self) -> None:
        if self._waker is None:
            self._waker = Waker(self.backend, self.queue_names, self.events, self.timing.idle_block)
            self._waker.start()
        self._waker.armed.set()

    def _pass_wake_token(self, key: str) -> None:
        """We took a wake-up token we cannot use: leave it for another worker."""
        try:
            pipe = self.connection.pipeline(transaction=True)  # keep at most one token
            pipe.rpush(key, "1")
            pipe.ltrim(key, 0, 0)
            pipe.execute()
        except REDIS_DOWN:
            pass

    def _redis_is_down(self, exc: Exception) -> None:
        now = time.monotonic()
        if self._redis_down_since is None:
            self._redis_down_since = now
            log.warning("Redis unreachable (%s); keeping %d running job(s) and %d outcome(s), retrying",
                        exc, len(self.running), len(self.pending))
        backoff = min(5.0, 0.25 * 2 ** min(5, int((now - self._redis_down_since) / 2)))
        self._enforce_timeouts()
        self._wait(longest=backoff)

    def _redis_back(self) -> None:
        if self._redis_down_since is not None:
            log.warning("Reconnected to Redis after %.1f s", time.monotonic() - self._redis_down_since)
            self._redis_down_since = None
