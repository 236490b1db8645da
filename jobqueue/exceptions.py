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


class ConnectionConfigError(JobQueueError):
    """The Redis URL is malformed or Redis cannot be reached."""


class EmbeddedRedisError(JobQueueError):
    """The private redis-server could not be found or started."""


class InvalidJobOperation(JobQueueError):
    """An operation that does not fit the job's current state."""
