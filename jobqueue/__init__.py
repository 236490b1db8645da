"""jobqueue: an RQ-style job queue on Redis that never loses a job.

    from jobqueue import Queue, Worker, Retry
    q = Queue(connection=redis_client)          # or no connection: the embedded default
    job = q.enqueue("tasks.count_words", "https://example.com", retry=Retry(max=3))
    Worker([q]).work(burst=True)
    job.return_value()
"""

from .exceptions import (AbandonedJobError, AttemptSuperseded, DeserializationError, DuplicateJobError,
                         ImportFunctionError, JobQueueError, JobTimeoutError, NoSuchJobError, Postpone, RetryLater,
                         SerializationError, StopRetrying)
from .job import Job, JobStatus
from .queue import Queue
from .registry import (CanceledJobRegistry, FailedJobRegistry, FinishedJobRegistry, ScheduledJobRegistry,
                       StartedJobRegistry)
from .retry import Retry
from .scripts import Script
from .worker import Timing, Worker, get_current_job

__all__ = [
    "Queue", "Job", "JobStatus", "Worker", "Retry", "Script", "Timing", "get_current_job",
    "StartedJobRegistry", "FinishedJobRegistry", "FailedJobRegistry", "ScheduledJobRegistry", "CanceledJobRegistry",
    "JobQueueError", "NoSuchJobError", "SerializationError", "DeserializationError", "ImportFunctionError",
    "JobTimeoutError", "AbandonedJobError", "StopRetrying", "RetryLater", "Postpone", "DuplicateJobError", "AttemptSuperseded",
]
__version__ = "0.1.0"
