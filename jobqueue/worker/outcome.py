"""Running one attempt's function and turning what it did into an Outcome.

A job's function returns a value, raises, or returns a
``concurrent.futures.Future``: then the job is done when the future is, and
no thread waits for it meanwhile (the downloader's transfers all run on one
libcurl loop). The worker stops such a job (timeout, superseded attempt, cold
shutdown) by cancelling the future: whoever resolves it must check
``cancelled()`` and stop its work. ``on_success`` of such a job runs on the
thread that resolves the future.
"""

from __future__ import annotations

import threading
import time
import traceback
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import AttemptSuperseded, ImportFunctionError, JobQueueError, Postpone, StopRetrying
from ..imports import FunctionImporter
from ..job import Job
from ..keys import started_member
from ..scripts import Script

_current = threading.local()


def get_current_job() -> Job | None:
    """The job the calling thread (or work horse) is running, as in RQ."""
    return getattr(_current, "job", None)


def attempt_key(job: Job) -> str:
    """What names a running attempt in the worker: its started member, and
    its namespace (a worker of several may hold two jobs of one id). Worked
    out once per Job object: the attempt it was fetched as."""
    key = job.__dict__.get("_attempt_key")
    if key is None:
        key = job._attempt_key = key_of_member(job.backend, started_member(job.id, job.attempt))
    return key


def key_of_member(backend: object, member: str) -> str:
    """The attempt key of a started member of ``backend``'s namespace."""
    return f"{member}@{id(backend):x}"


@dataclass
class Outcome:
    key: str                       # the attempt (attempt_key)
    ok: bool
    result: str | None = None      # serialized return value
    exc_info: str | None = None    # traceback text
    duration: float = 0.0
    retry: bool = True             # False: fail now whatever the Retry policy (StopRetrying)
    retry_after: float | None = None  # the job asked for at least this pause (RetryLater)
    postpone: float | None = None  # the job cannot run yet: again after this pause, using no retry (Postpone)
    writes: list[tuple[Script, list[Any]]] = field(default_factory=list)  # Job.write_on_success calls
    refused: bool = False          # the worker would not run it (not allowed, not importable, refused serializer):
                                   # failed at once, its arguments never decoded, its callbacks never called


def stopped(job: Job) -> Outcome:
    """What a stopped attempt reports (the worker knows why it stopped it)."""
    return Outcome(attempt_key(job), False, None, "JobTimeoutError: stopped")


def refusal(job: Job, serializers: set[str]) -> Outcome | None:
    """A fetched job that cannot be run at all, as its failed Outcome: it is
    refused before anything of it is decoded or run (no retry, no callbacks)."""
    try:
        job.timeout  # (a corrupt value raises here)
        if job.serializer.name not in serializers:
            raise JobQueueError(f"job uses the {job.serializer.name} serializer, which this worker does not "
                                "accept; start the worker with --allow-pickle to run it")
        if not job.func_name:
            shared = job._get("shared")
            raise JobQueueError(f"job has no 'func' field: its shared options ({job.backend.keys.shared(shared)}) "
                                f"are gone (deleted); re-enqueue the job" if shared else
                                "job hash has no 'func' field (corrupted); delete the job")
    except Exception as exc:
        msg = exc if isinstance(exc, JobQueueError) else f"job hash is corrupted ({exc!r}); delete or re-enqueue it"
        return Outcome(attempt_key(job), False, None, f"{type(exc).__name__}: {msg}", retry=False, refused=True)
    return None


def run_job(job: Job, importer: FunctionImporter, wait: bool = False) -> Outcome | Future:
    """Import, call, serialize, then ``on_success(job, connection, result)``
    as in RQ. Every error becomes a failed Outcome, never a crashed worker; a
    failing success callback fails the job, and a superseded attempt does not
    call it. (``on_failure`` is called by the worker once a failure is final
    and recorded: see worker.callbacks.) A Future the function returns is
    handed back for the caller to ``settle`` once resolved, or, with ``wait``
    (a work horse), waited for here."""
    start = time.perf_counter()
    _current.job = job
    job._writes = []
    try:
        func = importer(job.func_name)
    except ImportFunctionError as exc:
        return Outcome(attempt_key(job), False, None, f"ImportFunctionError: {exc}", retry=False, refused=True)
    try:
        args, kwargs = job._payload()
        value = func(*args, **kwargs)
        if isinstance(value, Future):
            if not wait:
                return value
            value = value.result()
        return _succeeded(job, importer, value, start)
    except BaseException as exc:
        return _failed(job, exc, start)
    finally:
        _current.job = None


def settle(job: Job, importer: FunctionImporter, future: Future, start: float) -> Outcome:
    """The Outcome of a resolved future (on the thread that resolved it)."""
    if future.cancelled():
        return stopped(job)
    _current.job = job
    try:
        exc = future.exception()
        if exc is not None:
            return _failed(job, exc, start)
        return _succeeded(job, importer, future.result(), start)
    except BaseException as exc:
        return _failed(job, exc, start)
    finally:
        _current.job = None


def _succeeded(job: Job, importer: FunctionImporter, value: Any, start: float) -> Outcome:
    encoded = job.serializer.dumps(value)
    if job._get("on_success"):
        if job.is_superseded():
            raise AttemptSuperseded(f"attempt {job.attempt} of job {job.id} is no longer current; "
                                    "its on_success callback was not called")
        importer(job._get("on_success"))(job, job.connection, value)
    return Outcome(attempt_key(job), True, encoded, None, time.perf_counter() - start, writes=job._writes)


def _failed(job: Job, exc: BaseException, start: float) -> Outcome:
    # our own errors carry a complete message; no traceback noise
    exc_info = f"{type(exc).__name__}: {exc}" if isinstance(exc, JobQueueError) else \
        "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return Outcome(attempt_key(job), False, None, exc_info, time.perf_counter() - start, writes=job._writes,
                   retry=not isinstance(exc, StopRetrying), retry_after=getattr(exc, "retry_after", None),
                   postpone=exc.delay if isinstance(exc, Postpone) else None)
