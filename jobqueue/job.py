"""A job: one function call stored as a Redis hash, plus its state and outcome."""

from __future__ import annotations

import functools
import json
import uuid
from enum import Enum
from typing import Any, Callable, Iterable

import redis

from . import compact, timeutil
from .backend import Backend, storable, text, text_dict
from .exceptions import DeserializationError, InvalidJobOperation, NoSuchJobError
from .imports import func_path
from .keys import Keys, started_member
from .retry import Retry
from .scripts import Script
from .serializers import get_serializer

DEFAULT_TIMEOUT = 180
DEFAULT_RESULT_TTL = 500
DEFAULT_FAILURE_TTL = 365 * 24 * 3600



def check_id(job_id: str) -> None:
    """A job id names keys and travels through Lua's cjson: UTF-8 text only."""
    if storable(job_id) != job_id:
        raise InvalidJobOperation(f"job id {storable(job_id)!r} is not UTF-8 (undecodable bytes shown escaped); "
                                  "use UTF-8 text")

class JobStatus(str, Enum):
    QUEUED = "queued"
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"
    SCHEDULED = "scheduled"
    CANCELED = "canceled"

    def __str__(self) -> str:
        return self.value


def _describe(func_name: str, args: Iterable[Any], kwargs: dict[str, Any]) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{func_name}({', '.join(parts)})"


def _ttl_text(value: int | str | None, name: str = "ttl", minimum: int = 0) -> str:
    """Seconds as stored; -1 means "for ever" (no timeout, kept for ever) as in
    RQ, and anything else below ``minimum`` is refused at enqueue."""
    seconds = timeutil.parse_duration(value)
    if seconds is not None and seconds != -1 and seconds < minimum:
        raise InvalidJobOperation(f"{name}={value!r} is out of range: use at least {minimum} seconds "
                                  f"('90s', '5m', '1h'), or -1 for none")
    return "" if seconds is None else str(seconds)


@functools.lru_cache(maxsize=256)  # every job of a big batch has the same options: worked out once
def _shared_options(path: str, serializer: str, timeout: int | str | None, result_ttl: int | str | None,
                    failure_ttl: int | str | None, retry: tuple[int, tuple[float, ...]] | None,
                    on_success: str | None, on_failure: str | None) -> dict[str, str]:
    """The fields compact.py stores once for all the jobs that share them
    (never mutated: callers copy)."""
    fields = {
        "func": path, "serializer": serializer,
        "timeout": _ttl_text(DEFAULT_TIMEOUT if timeout is None else timeout, "timeout", 1),
        "result_ttl": _ttl_text(DEFAULT_RESULT_TTL if result_ttl is None else result_ttl, "result_ttl"),
        "failure_ttl": _ttl_text(DEFAULT_FAILURE_TTL if failure_ttl is None else failure_ttl, "failure_ttl"),
    }
    if on_success is not None:
        fields["on_success"] = on_success
    if on_failure is not None:
        fields["on_failure"] = on_failure
    if retry:
        fields["retries_left"] = str(retry[0])
        fields["retry_intervals"] = json.dumps(list(retry[1]))
    return fields


class Job:
    """Create jobs with ``Queue.enqueue``; load them with ``Job.fetch``."""

    def __init__(self, id: str | None = None, connection: redis.Redis | Backend | None = None,
                 *, prefix: str | None = None) -> None:
        self.backend = Backend.of(connection, prefix)
        self.connection = self.backend.connection
        self.id = id or uuid.uuid4().hex
        self._fields: dict[str, str] = {}
        self._result_loaded = False
        self._result: Any = None
        self._writes: list[tuple[Script, list[Any]]] | None = None  # a list while a worker runs the job
        self._superseded = False  # set by the worker when it learns this attempt is no longer current
        self._front = 0  # enqueued at the front of its queue (at_front)

    # -- creation and loading -------------------------------------------------------

    @classmethod
    def create(cls, func: Callable[..., Any] | str, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None,
               *, connection: redis.Redis | Backend | None = None, id: str | None = None, origin: str = "default",
               description: str | None = None, timeout: int | None = None, result_ttl: int | None = None,
               failure_ttl: int | None = None, ttl: int | None = None, retry: Retry | None = None,
               meta: dict[str, Any] | None = None, serializer: str = "json", created_at: str | None = None,
               on_success: Callable[..., Any] | str | None = None,
               on_failure: Callable[..., Any] | str | None = None) -> "Job":
        """Build a job in memory; serializing here makes a bad argument fail at
        enqueue time. Optional fields left at their default are not stored,
        and what is stored is laid out compactly (compact.py)."""
        if id is not None:
            check_id(id)
        job = cls(id, connection)
        ser = get_serializer(serializer)
        fields = {
            **_shared_options(func_path(func), ser.name, timeout, result_ttl, failure_ttl,
                              (retry.max, tuple(retry.intervals)) if retry else None,
                              None if on_success is None else func_path(on_success),
                              None if on_failure is None else func_path(on_failure)),
            "id": job.id, "data": ser.dumps([list(args), dict(kwargs or {})]), "origin": origin,
            "status": JobStatus.QUEUED.value, "created_at": created_at or timeutil.iso(),
        }
        if description:
            fields["description"] = description
        if ttl is not None:
            fields["ttl"] = _ttl_text(ttl, "ttl", 1)
        if meta:
            fields["meta"] = ser.dumps(meta)
        job._fields = fields
        return job

    @classmethod
    def from_fields(cls, backend: Backend, fields: dict[str, str]) -> "Job":
        """A job from its fields: as stored, with its shared options merged in
        (the worker's round trip does that), or as read before."""
        job = cls(fields.get("id"), backend)
        job._fields = compact.unpack(fields)
        return job

    @classmethod
    def fetch(cls, id: str, connection: redis.Redis | Backend | None = None, *, prefix: str | None = None) -> "Job":
        job = cls(id, connection, prefix=prefix)
        job.refresh()
        return job

    @classmethod
    def fetch_many(cls, ids: Iterable[str], connection: redis.Redis | Backend | None = None,
                   *, prefix: str | None = None) -> list["Job | None"]:
        """One round trip; missing jobs come back as None, as in RQ."""
        backend = Backend.of(connection, prefix)
        ids = list(ids)
        pipe = backend.connection.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(backend.keys.job(job_id))
        jobs: list[Job | None] = []
        stored = [text_dict(raw) for raw in pipe.execute()]
        for job_id, fields in zip(ids, _with_shared(backend, stored)):
            jobs.append(cls.from_fields(backend, {**fields, "id": job_id}) if _live(fields) else None)
        return jobs

    @staticmethod
    def key_for(id: str, prefix: str | None = None) -> str:
        return Keys(prefix).job(id)

    @property
    def key(self) -> str:
        return self.backend.keys.job(self.id)

    def refresh(self) -> None:
        fields = _with_shared(self.backend, [text_dict(self.connection.hgetall(self.key))])[0]
        if not _live(fields):
            raise NoSuchJobError(self.id)
        self._fields = {**fields, "id": self.id}
        self._result_loaded = False

    # -- attributes ------------------------------------------------------------------

    def get_id(self) -> str:
        return self.id

    def _get(self, name: str) -> str | None:
        return self._fields.get(name) or None

    def _int(self, name: str) -> int | None:
        value = self._get(name)
        return None if value is None else int(float(value))

    @property
    def serializer(self):
        return get_serializer(self._get("serializer") or "json")

    @property
    def func_name(self) -> str:
        return self._get("func") or ""

    def _payload(self) -> tuple[list[Any], dict[str, Any]]:
        data = self._get("data")
        if data is None:
            raise DeserializationError(f"job {self.id} has no 'data' field: its hash was corrupted; delete it")
        payload = self.serializer.loads(data)
        if not (isinstance(payload, list) and len(payload) == 2 and isinstance(payload[1], dict)):
            raise DeserializationError(f"job {self.id}: 'data' is not [args, kwargs]; its hash was corrupted")
        return payload[0], payload[1]

    @property
    def args(self) -> list[Any]:
        return self._payload()[0]

    @property
    def kwargs(self) -> dict[str, Any]:
        return self._payload()[1]

    @property
    def description(self) -> str:
        """As given at enqueue, else made from the call (as RQ makes it)."""
        given = self._get("description")
        if given is not None:
            return given
        try:
            args, kwargs = self._payload()
        except DeserializationError:
            return f"{self.func_name}(?)"
        return _describe(self.func_name, args, kwargs)

    origin = property(lambda self: self._get("origin") or "default")
    worker_name = property(lambda self: self._get("worker"))
    exc_info = property(lambda self: self._get("exc_info"))
    timeout = property(lambda self: self._int("timeout"))
    result_ttl = property(lambda self: self._int("result_ttl"))
    failure_ttl = property(lambda self: self._int("failure_ttl"))
    ttl = property(lambda self: self._int("ttl"))
    retries_left = property(lambda self: self._int("retries_left") or 0)
    attempt = property(lambda self: self._int("attempt") or 0, doc="How many times a worker took the job (1 = first).")
    created_at = property(lambda self: timeutil.parse_iso(self._get("created_at")))
    enqueued_at = property(lambda self: timeutil.parse_iso(self._get("enqueued_at")))
    started_at = property(lambda self: timeutil.parse_iso(self._get("started_at")))
    ended_at = property(lambda self: timeutil.parse_iso(self._get("ended_at")))

    @property
    def retry_intervals(self) -> list[float]:
        return json.loads(self._get("retry_intervals") or "[]")

    @property
    def meta(self) -> dict[str, Any]:
        if "_meta" not in self.__dict__:
            self.__dict__["_meta"] = self.serializer.loads(self._get("meta") or "{}")
        return self.__dict__["_meta"]

    def save_meta(self) -> None:
        """Write only ``meta``, so a running job can report progress safely."""
        encoded = self.serializer.dumps(self.meta)
        self._fields["meta"] = encoded
        self.connection.hset(self.key, "meta", encoded)

    def write_on_success(self, script: Script, *argv: Any) -> None:
        """Have ``script`` applied to ``argv`` in the worker's round trip that
        records this job's success, instead of in a round trip of its own: per-job
        bookkeeping (progress counters) then costs the job next to nothing.

        The script is called once per round trip for all the jobs recorded in
        it: ARGV[1] is a JSON array of their ``argv`` lists (an array of one
        outside a worker, where it runs at once). In a worker the writes are
        applied once, together with the success that is recorded (one
        MULTI/EXEC, behind scripts/fence.lua; after Redis forgot its scripts,
        a round trip later at most): dropped if the job fails or its attempt
        is no longer current, never applied twice when a round trip whose
        reply was lost is sent again."""
        if self._writes is None:
            script(self.connection, json.dumps([list(argv)]))
        else:
            self._writes.append((script, list(argv)))

    def is_superseded(self, refresh: bool = True) -> bool:
        """Whether this attempt is no longer the job's current one: it was
        reaped (its worker looked dead), canceled, deleted or taken again. A
        long job may ask now and then and stop early; whatever it does after
        that is dropped anyway (outcome, callbacks, ``write_on_success``).
        ``refresh=False`` answers without a round trip, from what the worker's
        heartbeat has learnt (at most one heartbeat interval late)."""
        if self._superseded or not refresh:
            return self._superseded
        if not self.attempt:
            return False  # not taken by a worker: nothing to supersede
        member = started_member(self.id, self.attempt)
        if self.connection.zscore(self.backend.keys.registry("started", self.origin), member) is None:
            self._superseded = True
        return self._superseded

    def get_status(self, refresh: bool = True) -> JobStatus | None:
        if refresh:
            status = text(self.connection.hget(self.key, "status"))
            if status is None:
                return None
            self._fields["status"] = status
        status = self._get("status")
        return JobStatus(status) if status else None

    is_queued = property(lambda self: self.get_status() == JobStatus.QUEUED)
    is_started = property(lambda self: self.get_status() == JobStatus.STARTED)
    is_finished = property(lambda self: self.get_status() == JobStatus.FINISHED)
    is_failed = property(lambda self: self.get_status() == JobStatus.FAILED)
    is_scheduled = property(lambda self: self.get_status() == JobStatus.SCHEDULED)
    is_canceled = property(lambda self: self.get_status() == JobStatus.CANCELED)

    def return_value(self, refresh: bool = True) -> Any:
        """The function's return value once finished, else None (as in RQ)."""
        if refresh:
            try:
                self.refresh()
            except NoSuchJobError:
                return None
        if not self._result_loaded:
            raw = self._get("result")
            self._result = self.serializer.loads(raw) if raw is not None and self._get("status") == "finished" else None
            self._result_loaded = True
        return self._result

    @property
    def result(self) -> Any:
        return self.return_value(refresh=True)

    def get_position(self) -> int | None:
        """Index in its queue (0 = next), or None when not waiting."""
        position = self.connection.execute_command("LPOS", self.backend.keys.queue(self.origin), self.id)
        return None if position is None else int(position)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: stored fields as text, args/kwargs/meta/result decoded when JSON."""
        out: dict[str, Any] = {k: v for k, v in self._fields.items() if k not in ("data", "meta", "result")}
        out["description"] = self.description
        if self.serializer.name == "json":
            try:
                out["args"], out["kwargs"] = self._payload()
                out["meta"] = self.meta
                out["result"] = self.return_value(refresh=False)
            except DeserializationError as exc:
                out["error"] = str(exc)
        return out

    def fields(self) -> dict[str, str]:
        return dict(self._fields)

    def __repr__(self) -> str:
        return f"Job({self.id!r}, status={self._get('status')!r}, func={self.func_name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    # -- state changes (each one atomic script) --------------------------------------

    def cancel(self) -> None:
        """Kept as long as a failure (``failure_ttl``; negative: for ever)."""
        ttl = DEFAULT_FAILURE_TTL if self.failure_ttl is None else self.failure_ttl
        was = text(self.backend.run("cancel", self.id, self.origin, ttl))
        if was is None:
            raise NoSuchJobError(self.id)
        if was in ("finished", "failed", "canceled"):
            raise InvalidJobOperation(f"job {self.id} is already {was}; only waiting or running jobs can be canceled")
        self._fields["status"] = "canceled"

    def requeue(self) -> "Job":
        """Put a failed or canceled job back on its queue."""
        done = self.backend.run("requeue", self.origin, self.id)
        if not done:
            status = self.get_status()
            raise InvalidJobOperation(
                f"job {self.id} is {status or 'missing'}; only failed or canceled jobs can be requeued"
            )
        self.refresh()
        return self

    def delete(self) -> None:
        """Remove the job and every reference to it (one script); a running
        attempt is dropped and stopped like a canceled one."""
        self.backend.run("delete", self.id, self.origin)


def _with_shared(backend: Backend, stored: list[dict[str, str]]) -> list[dict[str, str]]:
    """Stored hashes, unpacked with their shared options: one round trip for
    the options this process has not read yet, none for the rest (they never
    change). A job whose shared options are gone reads without them (and
    fails with a message saying so if a worker takes it)."""
    names = {fields.get("shared") for fields in stored} - {None, ""}
    unread = sorted(name for name in names if compact.cached(name) is None)
    read: dict[str, dict[str, str]] = {}
    if unread:
        pipe = backend.connection.pipeline(transaction=False)
        for name in unread:
            pipe.hgetall(backend.keys.shared(name))
        for name, raw in zip(unread, pipe.execute()):
            read[name] = text_dict(raw)
            compact.remember(name, read[name])
    return [compact.unpack(fields, compact.cached(fields.get("shared") or "") or read.get(fields.get("shared") or ""))
            if fields else fields for fields in stored]


def _live(fields: dict[str, str]) -> bool:
    """A settled job whose TTL ran out counts as gone even before the
    maintenance pass deletes it."""
    if not fields:
        return False
    expires = fields.get("expires_at")
    return not expires or float(expires) < 0 or float(expires) > timeutil.now()
