"""``on_failure`` callbacks, called by the worker once a job's failure is
final: the job raised with no retry left, timed out, its work horse died, or
(from the reaper) its workers kept dying. As in RQ the callback gets
``(job, connection, type, value, traceback)``; here ``value`` is a
``JobFailed`` holding the failure's text, as the exception itself may have
lived in another process."""

from __future__ import annotations

import logging

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
