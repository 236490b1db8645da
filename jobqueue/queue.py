"""A named queue: where jobs wait, in order, until a worker takes them."""

from __future__ import annotations

import time
from collections import Counter
import uuid
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, NamedTuple, Sequence

import redis

from . import compact, timeutil
from .backend import Backend, storable, text
from .exceptions import DuplicateJobError, JobQueueError
from .job import DEFAULT_FAILURE_TTL, Job, JobStatus, check_id
from .registry import (CanceledJobRegistry, FailedJobRegistry, FinishedJobRegistry, ScheduledJobRegistry,
                       StartedJobRegistry)
from .retry import Retry
from .serializers import compact_json

ENQUEUE_CHUNK = 500
EMPTY_STEP = 10_000  # waiting jobs removed per call of empty.lua
REPLAY_PAUSES = (0.1, 0.3, 1.0, 2.0, 4.0)  # an enqueue whose outcome is unknown is sent again this often
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
_encode = compact_json
_JOB_OPTIONS = ("timeout", "result_ttl", "failure_ttl", "ttl", "description", "job_id", "retry", "meta", "at_front",
                "on_success", "on_failure", "unique")


def _shared_of(names: list[str], shared: dict[str, list[str]]) -> str:
    """The shared hashes a chunk's jobs name, as enqueue.lua takes them."""
    return _encode({name: shared[name] for name in set(names) if name})


def _flat(fields: dict[str, str]) -> list[str]:
    """field, value, field, value, ... as HSET takes them."""
    return [x for kv in fields.items() for x in kv]


class PreparedCalls(NamedTuple):
    """Jobs made by ``Queue.prepare_calls``, ready for ``enqueue_prepared``:
    encoded already (a producer encodes its next batch while Redis takes the
    last), and what the jobs have in common sent once per call, not per job."""
    ids: list[str]
    records: list[str]                 # each job's own part, as JSON (enqueue.lua's record)
    shared: tuple[str, dict[str, str]]  # the shared options' digest and fields (compact.py)
    defaults: dict[str, Any]           # what every record has (queue, leading fields, front, ttl)


class EnqueueData(NamedTuple):
    """One job for ``enqueue_many``, made by ``Queue.prepare_data``."""
    func: Callable[..., Any] | str
    args: tuple
    kwargs: dict
    options: dict


class Queue:
    def __init__(self, name: str = "default", connection: redis.Redis | Backend | None = None,
                 *, prefix: str | None = None, serializer: str = "json", default_timeout: int | None = None) -> None:
        if not name or any(c.isspace() for c in name) or storable(name) != name:
            raise JobQueueError(f"invalid queue name {storable(name)!r}: use a non-empty UTF-8 name without spaces")
        self.name = name
        self.backend = Backend.of(connection, prefix)
        self.connection = self.backend.connection
        self.key = self.backend.keys.queue(name)
        self.serializer = serializer
        self.default_timeout = default_timeout

    def __repr__(self) -> str:
        return f"Queue({self.name!r})"

    def __len__(self) -> int:
        return self.count

    @property
    def count(self) -> int:
        return self.connection.llen(self.key)

    def is_empty(self) -> bool:
        return self.count == 0

    @classmethod
    def all(cls, connection: redis.Redis | Backend | None = None, *, prefix: str | None = None) -> list["Queue"]:
        backend = Backend.of(connection, prefix)
        names = sorted(text(n) for n in backend.connection.smembers(backend.keys.queues))
        return [cls(n, backend) for n in names]

    # -- enqueueing ------------------------------------------------------------------

    def enqueue(self, f: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> Job:
        """``q.enqueue(f, 'x', job_timeout=30)``: options are taken out of
        kwargs as in RQ; ``args=``/``kwargs=`` pass them explicitly."""
        options, args, kwargs = self._split_options(args, kwargs)
        return self.enqueue_call(f, args, kwargs, **options)

    def enqueue_call(self, func: Callable[..., Any] | str, args: Iterable[Any] | None = None,
                     kwargs: dict[str, Any] | None = None, **options: Any) -> Job:
        now_iso = timeutil.iso()
        job = self._build(EnqueueData(func, tuple(args or ()), dict(kwargs or {}), options), now_iso)
        self._submit([job], now_iso)
        return job

    def enqueue_at(self, when: datetime, f: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> Job:
        options, args, kwargs = self._split_options(args, kwargs)
        now_iso = timeutil.iso()
        job = self._build(EnqueueData(f, args, kwargs, options), now_iso)
        self._submit([job], now_iso, when={"at": timeutil.to_epoch(when)})
        return job

    def enqueue_in(self, delay: timedelta, f: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> Job:
        """Due ``delay`` from now on Redis's clock (this machine's may be off)."""
        options, args, kwargs = self._split_options(args, kwargs)
        now_iso = timeutil.iso()
        job = self._build(EnqueueData(f, args, kwargs, options), now_iso)
        self._submit([job], now_iso, when={"delay": max(0.0, delay.total_seconds())})
        return job

    @staticmethod
    def prepare_data(func: Callable[..., Any] | str, args: Iterable[Any] = (), kwargs: dict | None = None,
                     **options: Any) -> EnqueueData:
        return EnqueueData(func, tuple(args or ()), dict(kwargs or {}), options)

    def enqueue_many(self, job_datas: Iterable[EnqueueData], *, also: Sequence[Sequence[Any]] = ()) -> list[Job]:
        """All jobs are serialized first (a bad argument enqueues nothing),
        then written in chunks of one script call each, pipelined. Ids that
        are live (queued, scheduled, started) are refused and the others
        enqueued; then DuplicateJobError names the refused ones.

        ``also``: Redis commands of the application's own, e.g.
        ``[("HSET", "myapp:batch:7", "job-1", "x")]``, written in the same
        MULTI/EXEC as the jobs, so the application's record of them and the
        jobs appear together or not at all. A write whose outcome is unknown
        (a stalled connection) is sent again, so they must be safe to repeat."""
        return self.enqueue_prepared(self.prepare_many(job_datas), also=also)

    def prepare_many(self, job_datas: Iterable[EnqueueData]) -> list[Job]:
        """Build and serialize jobs without writing them (a bad argument
        raises here); ``enqueue_prepared`` writes them. A producer can build
        its next batch while Redis takes the last."""
        now_iso = timeutil.iso()
        return [self._build(d, now_iso) for d in job_datas]

    def prepare_calls(self, func: Callable[..., Any] | str,
                      calls: Iterable[tuple[Sequence[Any], dict[str, Any], str | None]],
                      **options: Any) -> "PreparedCalls":
        """Many calls of one function with the same options, a job each, built
        without a Job object per call: how a producer makes millions of jobs
        cheaply. ``calls``: (args, kwargs, job id or None) each; ``options`` as
        for ``enqueue`` (each job's id comes with its call). Checked as
        ``prepare_many`` checks; ``enqueue_prepared`` writes them."""
        if "job_id" in options:
            raise JobQueueError("prepare_calls takes each job's id with its call, not job_id=")
        template = self._build(EnqueueData(func, (), {}, options))
        template._fields["created_at"] = template._fields["enqueued_at"] = timeutil.iso()  # one stamp, stored once
        own, shared, name = compact.pack(template._fields)
        base = _flat({k: v for k, v in own.items() if not k.startswith("data")})
        defaults = {"q": self.name, "base": base, "front": template._front, "ttl": template.ttl}
        dumps, ids, records = template.serializer.dumps, [], []
        for args, kwargs, job_id in calls:
            if job_id:
                check_id(job_id)
            else:
                job_id = uuid.uuid4().hex
            ids.append(job_id)
            records.append(_encode({"id": job_id, "f": _flat(compact.pieces(dumps([list(args), dict(kwargs)])))}))
        return PreparedCalls(ids, records, (name, shared), defaults)

    def enqueue_prepared(self, prepared: "list[Job] | PreparedCalls", *,
                         also: Sequence[Sequence[Any]] = ()) -> "list[Job] | PreparedCalls":
        """Write jobs made by ``prepare_many`` or ``prepare_calls``, as
        ``enqueue_many`` does."""
        if isinstance(prepared, PreparedCalls):
            if prepared.ids:
                name, fields = prepared.shared
                self._write(prepared.ids, prepared.records, [name] * len(prepared.ids), {name: _flat(fields)}, also,
                            defaults=prepared.defaults)
        elif prepared:
            self._submit(prepared, timeutil.iso(), also=also)
        return prepared

    def enqueue_once(self, prepared: "PreparedCalls", key: str, entries: Sequence[tuple[str, str]], *,
                     also: Sequence[Sequence[Any]] = ()) -> int:
        """``enqueue_prepared``, deduplicated by a key of the caller's (a URL,
        say): each job comes with an entry (field, value) of the hash ``key``;
        a job whose field is there already is left out, and the others'
        entries are set, in the same atomic step as the jobs. So two batches
        (or two producers) with a job of the same field in flight at once
        enqueue it once. On Redis Cluster ``key`` must share the queue's hash
        slot (its hash tag). Returns how many jobs were enqueued."""
        if len(entries) != len(prepared.ids):
            raise JobQueueError(f"enqueue_once takes one entry per job: {len(entries)} for {len(prepared.ids)} job(s)")
        if not prepared.ids:
            return 0
        name, fields = prepared.shared
        return self._write(prepared.ids, prepared.records, [name] * len(prepared.ids), {name: _flat(fields)}, also,
                           defaults={**prepared.defaults, "once": key}, once=[list(e) for e in entries])

    def cancel_many(self, job_ids: Iterable[str], failure_ttl: int | None = None) -> int:
        """Cancel those of ``job_ids`` (jobs of this queue) that wait or run, in
        chunked round trips; returns how many were. A running attempt is
        stopped as by ``Job.cancel``; missing and settled ids are left alone."""
        ttl = DEFAULT_FAILURE_TTL if failure_ttl is None else failure_ttl
        was = self._each("cancel", job_ids, self.name, ttl)
        return sum(1 for status in was if text(status) in ("queued", "scheduled", "started"))

    def delete_many(self, job_ids: Iterable[str]) -> int:
        """Delete jobs of this queue and every reference to them (running
        attempts are dropped and stopped); returns how many hashes went."""
        return sum(int(n or 0) for n in self._each("delete", job_ids, self.name))

    def _each(self, script: str, job_ids: Iterable[str], *args: Any) -> list[Any]:
        """One script call per id, ENQUEUE_CHUNK calls per round trip."""
        ids, results = list(job_ids), []
        for start in range(0, len(ids), ENQUEUE_CHUNK):
            results.extend(self.backend.run.many([(script, [i, *args]) for i in ids[start:start + ENQUEUE_CHUNK]]))
        return results

    def _split_options(self, args: tuple, kwargs: dict) -> tuple[dict, tuple, dict]:
        if "depends_on" in kwargs:
            raise JobQueueError("depends_on is not supported by jobqueue; enqueue the dependent job from the first one")
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in _JOB_OPTIONS or k == "job_timeout"}
        if "job_timeout" in options:
            options["timeout"] = options.pop("job_timeout")
        if "args" in kwargs or "kwargs" in kwargs:
            if args:
                raise JobQueueError("pass job arguments either positionally or as args=/kwargs=, not both")
            args, kwargs = tuple(kwargs.pop("args", ()) or ()), dict(kwargs.pop("kwargs", {}) or {})
        return options, tuple(args), kwargs

    def _build(self, data: EnqueueData, created_at: str | None = None) -> Job:
        opts = dict(data.options)
        if "job_timeout" in opts:
            opts["timeout"] = opts.pop("job_timeout")
        unknown = set(opts) - set(_JOB_OPTIONS)
        if unknown:
            raise JobQueueError(f"unknown job option(s) {', '.join(sorted(unknown))}; known: {', '.join(_JOB_OPTIONS)}")
        opts.pop("unique", None)  # as RQ's unique=True: a live id is always refused here (DuplicateJobError)
        retry = opts.get("retry")
        if retry is not None and not isinstance(retry, Retry):
            raise JobQueueError("retry= takes a Retry(max=..., interval=...)")
        job = Job.create(
            data.func, data.args, data.kwargs, connection=self.backend, id=opts.get("job_id"), origin=self.name,
            description=opts.get("description"),
            timeout=opts.get("timeout", self.default_timeout), result_ttl=opts.get("result_ttl"),
            failure_ttl=opts.get("failure_ttl"), ttl=opts.get("ttl"), retry=retry, meta=opts.get("meta"),
            serializer=self.serializer, created_at=created_at,
            on_success=opts.get("on_success"), on_failure=opts.get("on_failure"),
        )
        job._front = 1 if opts.get("at_front") else 0
        return job

    def _submit(self, jobs: list[Job], now_iso: str, when: dict | None = None,
                also: Sequence[Sequence[Any]] = ()) -> None:
        """Jobs as the enqueue script takes them (compact.py), written."""
        ids, records, names, shared = [], [], [], {}
        for job in jobs:
            fields = job._fields
            fields["created_at"] = fields["enqueued_at"] = now_iso  # one stamp: compact.py stores it once
            if when is not None:
                fields["status"] = JobStatus.SCHEDULED.value
            own, options_shared, name = compact.pack(fields, share=len(jobs) > 1)
            names.append(name)
            if name and name not in shared:
                shared[name] = _flat(options_shared)
            ids.append(job.id)
            records.append(_encode({"id": job.id, "q": self.name, "f": _flat(own), "front": job._front,
                                    "ttl": job.ttl, **(when or {})}))
        self._write(ids, records, names, shared, also, jobs)

    def _write(self, ids: list[str], records: list[str], names: list[str], shared: dict[str, list[str]],
               also: Sequence[Sequence[Any]] = (), jobs: Sequence[Job] = (), defaults: dict[str, Any] | None = None,
               once: list[list[str]] | None = None) -> int:
        """Write jobs (``records``: enqueue.lua's, JSON-encoded; ``defaults``:
        what they all have; ``once``: enqueue_once's entries) with the enqueue
        script, and return how many were enqueued: one call per chunk, all chunks
        in one round trip (with ``also``, one MULTI/EXEC). The call carries a
        request id, so when a stalled or dropped connection leaves its outcome
        unknown it is simply sent again (here, or by the client's own retries):
        a replay finds its own stamp and writes nothing twice."""
        twice = sorted(i for i, n in Counter(ids).items() if n > 1)
        if twice:
            raise DuplicateJobError(twice)
        request = uuid.uuid4().hex[:16]
        common = [_encode(defaults)] if defaults else []
        calls = [("enqueue", [request, "[" + ",".join(records[s:s + ENQUEUE_CHUNK]) + "]",
                              _shared_of(names[s:s + ENQUEUE_CHUNK], shared), *common,
                              *([_encode(once[s:s + ENQUEUE_CHUNK])] if once else [])])
                 for s in range(0, len(records), ENQUEUE_CHUNK)]
        for pause in (*REPLAY_PAUSES, None):
            try:
                if also:
                    results = self.backend.run.atomically(calls, also)[:len(calls)]
                elif len(calls) == 1:
                    results = [self.backend.run("enqueue", *calls[0][1])]
                else:
                    results = self.backend.run.many(calls)
                break
            except REDIS_DOWN:
                if pause is None:
                    raise
                time.sleep(pause)
        refused = [text(i) for result in results for i in result[1:]]
        count = sum(int(result[0]) for result in results)
        if refused:
            taken = set(refused)
            raise DuplicateJobError(refused, [job for job in jobs if job.id not in taken], count)
        return count

    # -- inspection and housekeeping ---------------------------------------------------

    def get_job_ids(self, offset: int = 0, length: int = -1) -> list[str]:
        end = -1 if length < 0 else offset + length - 1
        return [text(i) for i in self.connection.lrange(self.key, offset, end)]

    @property
    def job_ids(self) -> list[str]:
        return self.get_job_ids()

    def get_jobs(self, offset: int = 0, length: int = -1) -> list[Job]:
        return [j for j in Job.fetch_many(self.get_job_ids(offset, length), self.backend) if j is not None]

    @property
    def jobs(self) -> list[Job]:
        return self.get_jobs()

    def fetch_job(self, job_id: str) -> Job | None:
        """The job if it exists and belongs to this queue, else None (as in RQ)."""
        job = Job.fetch_many([job_id], self.backend)[0]
        return job if job is not None and job.origin == self.name else None

    def empty(self) -> int:
        """Remove every waiting job; returns how many. A long queue goes in
        steps of EMPTY_STEP jobs, each one atomic."""
        removed = 0
        while True:
            step = int(self.backend.run("empty", self.name, EMPTY_STEP))
            removed += step
            if step < EMPTY_STEP:
                return removed

    def delete(self, delete_jobs: bool = True) -> None:
        if delete_jobs:
            self.empty()
        pipe = self.connection.pipeline(transaction=True)
        pipe.delete(self.key, self.backend.keys.wake(self.name))
        pipe.srem(self.backend.keys.queues, self.name)
        pipe.execute()

    @property
    def started_job_registry(self) -> StartedJobRegistry:
        return StartedJobRegistry(queue=self)

    @property
    def finished_job_registry(self) -> FinishedJobRegistry:
        return FinishedJobRegistry(queue=self)

    @property
    def failed_job_registry(self) -> FailedJobRegistry:
        return FailedJobRegistry(queue=self)

    @property
    def scheduled_job_registry(self) -> ScheduledJobRegistry:
        return ScheduledJobRegistry(queue=self)

    @property
    def canceled_job_registry(self) -> CanceledJobRegistry:
        return CanceledJobRegistry(queue=self)
