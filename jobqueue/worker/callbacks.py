"""``on_failure`` callbacks, called by the worker once a job's failure is
final and recorded: the job raised with no retry left, timed out, its work
horse died, or (from the reaper) its workers kept dying. As in RQ the
callback gets ``(job, connection, type, value, traceback)``; here ``value``
is a ``JobFailed`` holding the failure's text, as the exception itself may
have lived in another process.

Callbacks run on threads of their own, never on the worker's loop or its
heartbeat: a slow one delays nothing, and one that runs past
``Timing.callback_timeout`` is logged and no longer waited for."""

from __future__ import annotations

import logging
import threading
import time

from ..backend import Backend
from ..exceptions import JobQueueError
from ..imports import FunctionImporter
from ..job import Job

log = logging.getLogger("jobqueue.worker")


class JobFailed(JobQueueError):
    def __init__(self, exc_info: str) -> None:
        lines = (exc_info or "").strip().splitlines()
        super().__init__(lines[-1] if lines else "job failed")
        self.exc_info = exc_info


def call_on_failure(job: Job, importer: FunctionImporter, exc_info: str) -> None:
    path = job._get("on_failure")
    if not path:
        return
    failure = JobFailed(exc_info)
    try:
        importer(path)(job, job.connection, JobFailed, failure, None)
    except Exception:
        log.exception("on_failure callback %s of job %s failed", path, job.id)


class Callbacks:
    def __init__(self, importer: FunctionImporter, timeout: float) -> None:
        self.importer, self.timeout = importer, timeout
        self._running: list[tuple[threading.Thread, Job, float]] = []

    def on_failure(self, job: Job, exc_info: str) -> None:
        if not job._get("on_failure"):
            return
        thread = threading.Thread(target=call_on_failure, args=(job, self.importer, exc_info),
                                  name=f"on_failure-{job.id}", daemon=True)
        thread.start()
        self._running.append((thread, job, time.monotonic() + self.timeout))

    def on_abandoned(self, backend: Backend, job_ids: list[str], reason: str) -> None:
        """The reaper failed these jobs for good (their workers kept dying)."""
        for job in Job.fetch_many(job_ids, backend):
            if job is not None:
                self.on_failure(job, job.exc_info or reason)

    def check(self) -> None:
        """Forget callbacks that ended; log (once) those past their timeout."""
        now, kept = time.monotonic(), []
        for thread, job, deadline in self._running:
            if not thread.is_alive():
                continue
            if now >= deadline:
                log.error("on_failure callback %s of job %s still running after %.0f s; no longer waited for",
                          job._get("on_failure"), job.id, self.timeout)
                continue
            kept.append((thread, job, deadline))
        self._running = kept

    def wait(self) -> None:
        """At shutdown: give running callbacks until their timeout."""
        for thread, _, deadline in self._running:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.check()
