"""What monitoring sees of workers: their registration, counters and the
jobs they hold (read from the started registries, so it is never stale)."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from .. import timeutil
from ..backend import Backend, text, text_dict
from ..job import Job
from ..keys import member_job_id


@dataclass
class WorkerInfo:
    name: str
    hostname: str = ""
    pid: int = 0
    queues: list[str] = field(default_factory=list)
    mode: str = "thread"
    concurrency: int = 1
    birth: str = ""
    last_heartbeat: str = ""
    successful_job_count: int = 0
    failed_job_count: int = 0
    total_working_time: float = 0.0
    current_jobs: list[tuple[str, str]] = field(default_factory=list)  # (job id, description)
    heartbeat_interval: float = 10.0
    heartbeat_age: float | None = None  # seconds since its last beat, on Redis's clock

    @property
    def state(self) -> str:
        if not self.responding:
            return "not responding"
        return "busy" if self.current_jobs else "idle"

    @property
    def responding(self) -> bool:
        """It beat within two intervals (a worker killed outright stays listed
        until its entry expires, one heartbeat TTL later: this says so sooner)."""
        return self.heartbeat_age is None or self.heartbeat_age <= 2 * self.heartbeat_interval + 1

    def queue_names(self) -> list[str]:
        return self.queues

    def get_current_job_ids(self) -> list[str]:
        return [job_id for job_id, _ in self.current_jobs]


def list_workers(connection: redis.Redis | Backend | None = None, *, queue=None,
                 prefix: str | None = None, with_jobs: bool = True) -> list[WorkerInfo]:
    """Live workers; with ``queue``, only those listening on it (as RQ's
    ``Worker.all(queue=q)``). ``with_jobs=False`` skips looking up the jobs
    they hold (a read of every started registry and job): for a caller that
    only asks who listens, every second."""
    if queue is not None and connection is None:
        connection = queue.backend
    backend = Backend.of(connection, prefix)
    conn, keys = backend.connection, backend.keys
    names = sorted(text(n) for n in conn.smembers(keys.workers))
    pipe = conn.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(keys.worker(name))
    hashes = pipe.execute()
    clock = backend.time()
    workers: dict[str, WorkerInfo] = {}
    for name, raw in zip(names, hashes):
        h = text_dict(raw)
        if not h:
            continue  # expired: died without registering death
        workers[name] = WorkerInfo(
            name=name, hostname=h.get("hostname", ""), pid=int(h.get("pid", 0) or 0),
            queues=[q for q in h.get("queues", "").split(",") if q], mode=h.get("mode", "thread"),
            concurrency=int(h.get("concurrency", 1) or 1), birth=h.get("birth", ""),
            last_heartbeat=h.get("last_heartbeat", ""),
            successful_job_count=int(h.get("successful_job_count", 0) or 0),
            failed_job_count=int(h.get("failed_job_count", 0) or 0),
            total_working_time=float(h.get("total_working_time", 0) or 0),
            heartbeat_interval=_number(h.get("heartbeat_interval"), 10.0),
            heartbeat_age=clock - _number(h.get("last_seen"), clock) if h.get("last_seen") else None,
        )
    if with_jobs:
        _attach_current_jobs(backend, workers)
    found = list(workers.values())
    return [w for w in found if queue.name in w.queues] if queue is not None else found


def _number(value: str | None, default: float) -> float:
    try:
        return float(value) if value else default
    except ValueError:  # a hand-edited entry: show the worker anyway
        return default


def _attach_current_jobs(backend: Backend, workers: dict[str, WorkerInfo]) -> None:
    conn, keys = backend.connection, backend.keys
    queues = sorted({q for w in workers.values() for q in w.queues})
    pipe = conn.pipeline(transaction=False)
    for q in queues:
        pipe.zrange(keys.registry("started", q), 0, -1)
    ids = [member_job_id(text(m)) for batch in pipe.execute() for m in batch]
    for job in Job.fetch_many(ids, backend):
        w = workers.get(job.worker_name or "") if job is not None else None
        if w is not None:
            w.current_jobs.append((job.id, job.description))


def age_seconds(iso_text: str) -> float | None:
    when = timeutil.parse_iso(iso_text)
    return None if when is None else timeutil.now() - when.timestamp()
