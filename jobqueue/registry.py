"""Registries: per-queue sorted sets of jobs in one state.

started (score = deadline the worker keeps pushing forward), finished,
failed and canceled (score = when the job may be deleted), scheduled
(score = when the job is due). Counts are ZCARD: O(1).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

import redis

from .backend import Backend, text
from .exceptions import InvalidJobOperation
from .job import Job
from .keys import member_job_id

if TYPE_CHECKING:
    from .queue import Queue


class BaseRegistry:
    kind = ""

    def __init__(self, name: str = "default", connection: redis.Redis | Backend | None = None,
                 queue: "Queue | None" = None, *, prefix: str | None = None) -> None:
        if queue is not None:
            name, connection = queue.name, queue.backend
        self.name = name
        self.backend = Backend.of(connection, prefix)
        self.connection = self.backend.connection
        self.key = self.backend.keys.registry(self.kind, name)

    @property
    def count(self) -> int:
        return self.connection.zcard(self.key)

    def __len__(self) -> int:
        return self.count

    def __contains__(self, item: "Job | str") -> bool:
        job_id = item.id if isinstance(item, Job) else item
        return self.connection.zscore(self.key, job_id) is not None

    def get_job_ids(self, start: int = 0, end: int = -1) -> list[str]:
        return [text(i) for i in self.connection.zrange(self.key, start, end)]

    def get_jobs(self, start: int = 0, end: int = -1) -> list[Job]:
        return [j for j in Job.fetch_many(self.get_job_ids(start, end), self.backend) if j is not None]

    def get_scores(self) -> dict[str, float]:
        return {text(i): s for i, s in self.connection.zrange(self.key, 0, -1, withscores=True)}


class StartedJobRegistry(BaseRegistry):
    """Members name attempts ('<id>:<attempt>', as RQ 2 names executions);
    the methods below speak of job ids."""
    kind = "started"

    def __contains__(self, item: "Job | str") -> bool:
        job_id = item.id if isinstance(item, Job) else item
        return job_id in self.get_job_ids()

    def get_job_ids(self, start: int = 0, end: int = -1) -> list[str]:
        return [member_job_id(text(m)) for m in self.connection.zrange(self.key, start, end)]

    def get_scores(self) -> dict[str, float]:
        return {member_job_id(text(m)): s for m, s in self.connection.zrange(self.key, 0, -1, withscores=True)}


class FinishedJobRegistry(BaseRegistry):
    kind = "finished"


class FailedJobRegistry(BaseRegistry):
    kind = "failed"

    def requeue(self, job_or_id: "Job | str") -> Job:
        job_id = job_or_id.id if isinstance(job_or_id, Job) else job_or_id
        if not self.requeue_many([job_id]):
            raise InvalidJobOperation(f"job {job_id} is not in the failed registry of queue {self.name!r}")
        return Job.fetch(job_id, self.backend)

    def requeue_all(self) -> int:
        return len(self.requeue_many(self.get_job_ids()))

    def requeue_many(self, ids: list[str]) -> list[str]:
        """The ids that were in this registry and are back on the queue."""
        done: list[str] = []
        for start in range(0, len(ids), 1000):
            done += [text(i) for i in self.backend.run("requeue", self.name, *ids[start:start + 1000])]
        return done


class ScheduledJobRegistry(BaseRegistry):
    kind = "scheduled"

    def get_scheduled_time(self, job_or_id: "Job | str"):
        job_id = job_or_id.id if isinstance(job_or_id, Job) else job_or_id
        score = self.connection.zscore(self.key, job_id)
        return None if score is None else datetime.fromtimestamp(score, tz=timezone.utc)

    def next_due(self) -> float | None:
        """Seconds until the earliest job here is due, on Redis's clock (0 when
        one is due already); None when there is none."""
        first = self.connection.zrange(self.key, 0, 0, withscores=True)
        return None if not first else max(0.0, first[0][1] - self.backend.time())


class CanceledJobRegistry(BaseRegistry):
    kind = "canceled"


REGISTRIES = {cls.kind: cls for cls in (StartedJobRegistry, FinishedJobRegistry, FailedJobRegistry,
                                         ScheduledJobRegistry, CanceledJobRegistry)}
