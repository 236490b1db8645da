"""One exception hierarchy for jobqueue; each message names the thing and the fix."""


class JobQueueError(Exception):
    """Base class of every error jobqueue raises on purpose."""


class NoSuchJobError(JobQueueError, KeyError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r} (it never existed, or its result/failure TTL ran out)")
        self.job_id = job_id

    def __str__(self) -> str:  # KeyError would add quotes
        return self.args[0]


class SerializationError(JobQueueError, TypeError):
    """An argument or result cannot be stored with the job's serializer."""


class DeserializationError(JobQueueError):
    """A job hash in Redis is missing fields or holds data that cannot be decoded."""


class ImportFunctionError(JobQueueError):
    """A job names a function that cannot (or may not) be imported."""


class JobTimeoutError(JobQueueError):
    """A job ran longer than its timeout and was stopped."""


class AbandonedJobError(JobQueueError):
    """The workers running a job kept dying; the reaper gave up on it."""


class StopRetrying(Exception):
    """Raise it (or a subclass) from a job for a failure no retry can fix:
    the job fails at once, whatever its Retry says."""


class RetryLater(Exception):
    """Raise it from a job to ask for its next retry no sooner than
    ``retry_after`` seconds (e.g. an HTTP Retry-After header)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Postpone(Exception):
    """Raise it from a job that cannot run yet (a host it must not call for a
    while, a resource another holds): it goes back to the scheduled registry
    and runs again ``delay`` seconds from now. A postponement is not a
    failure: it uses none of the job's retries, is not counted as failed,
    and calls no ``on_failure``."""

    def __init__(self, message: str, delay: float) -> None:
        super().__init__(message)
        self.delay = max(0.0, float(delay))


class ConnectionConfigError(JobQueueError):
    """The Redis URL is malformed or Redis cannot be reached."""


class EmbeddedRedisError(JobQueueError):
    """The private redis-server could not be found or started."""


class DuplicateJobError(JobQueueError):
    """An id is enqueued while a job with that id is queued, scheduled or
    started. ``job_ids``: the refused ids; ``enqueued``: the jobs of the same
    call that were enqueued all the same (Job objects, when the call had
    them), ``count``: how many."""

    def __init__(self, job_ids: list[str], enqueued: list | None = None, count: int | None = None) -> None:
        shown = ", ".join(job_ids[:5]) + (f" and {len(job_ids) - 5} more" if len(job_ids) > 5 else "")
        super().__init__(f"job id(s) {shown} already queued, scheduled or running; wait for the job to finish, "
                         "cancel or delete it first, or enqueue under another job_id")
        self.job_ids = job_ids
        self.enqueued = enqueued or []
        self.count = len(self.enqueued) if count is None else count


class AttemptSuperseded(JobQueueError):
    """Raised inside a running job whose attempt is no longer current (it was
    reaped, canceled or taken again): stop, nothing it does is recorded."""


class InvalidJobOperation(JobQueueError):
    """An operation that does not fit the job's current state."""
