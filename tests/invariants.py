"""What must hold after any failure, checked against Redis and the attempt log
that tests.jobs.tracked writes: one recorded outcome per job, its success's
writes applied once, no id twice across its queue and registries, nothing
left started, at most N attempts at once in a -c N worker."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from jobqueue import Job, JobStatus, Queue
from jobqueue.keys import member_job_id


@dataclass
class Attempt:
    tag: str
    pid: int
    ppid: int
    attempt: int
    how: str | None = None   # None: never ended (its process was killed)


def attempts(path: Path) -> list[Attempt]:
    found: list[Attempt] = []
    open_: dict[tuple, Attempt] = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        kind, tag, pid, ppid, attempt, *how = line.split()
        key = (tag, int(pid), int(attempt))
        if kind == "start":
            open_[key] = Attempt(tag, int(pid), int(ppid), int(attempt))
            found.append(open_[key])
        elif key in open_:  # the first end line counts (a stop landing after "ok" adds a second)
            open_.pop(key).how = how[0]
    return found


def max_at_once(path: Path, worker_pids: set[int]) -> dict[int, int]:
    """For each worker, the most attempts that ran at once in it (from the log's order)."""
    running: dict[int, set] = defaultdict(set)
    most: dict[int, int] = defaultdict(int)
    for line in path.read_text().splitlines() if path.exists() else []:
        kind, tag, pid, ppid, attempt, *_ = line.split()
        owner = int(pid) if int(pid) in worker_pids else int(ppid)
        if kind == "start":
            running[owner].add((tag, pid, attempt))
        else:
            running[owner].discard((tag, pid, attempt))
        most[owner] = max(most[owner], len(running[owner]))
    return dict(most)


def assert_one_outcome_each(queue: Queue, job_ids: list[str], status: JobStatus = JobStatus.FINISHED) -> None:
    r, keys = queue.connection, queue.backend.keys
    waiting = [i.decode() for i in r.lrange(keys.queue(queue.name), 0, -1)]
    assert len(waiting) == len(set(waiting)), f"an id twice in the queue: {waiting}"
    assert r.zcard(keys.registry("started", queue.name)) == 0, "attempts left started"
    assert r.zcard(keys.registry("scheduled", queue.name)) == 0, "jobs left scheduled"
    registry = {JobStatus.FINISHED: "finished", JobStatus.FAILED: "failed"}[status]
    recorded = {i.decode() for i in r.zrange(keys.registry(registry, queue.name), 0, -1)}
    for job_id in job_ids:
        job = Job.fetch(job_id, queue.backend)
        assert job.get_status() == status, f"{job_id} is {job.get_status()}"
        assert job_id in recorded and job_id not in waiting, job_id
    if status == JobStatus.FINISHED:
        writes = {k.decode(): int(v) for k, v in r.hgetall("writes").items()}
        tags = {Job.fetch(i, queue.backend).args[1] for i in job_ids}
        wrong = {t: writes.get(t) for t in tags if writes.get(t) != 1}
        fence = {i: r.hmget(keys.job(i), "attempt", "status", "settled", "written") for i in job_ids} if wrong else {}
        assert not wrong, f"a success's writes applied other than once: {wrong}; (attempt, status, settled, written): {fence}"


def assert_each_id_once(queue: Queue) -> None:
    """At one instant (MULTI/EXEC): no id stands twice across its queue, started and scheduled entries."""
    keys = queue.backend.keys
    pipe = queue.connection.pipeline(transaction=True)
    pipe.lrange(keys.queue(queue.name), 0, -1)
    pipe.zrange(keys.registry("started", queue.name), 0, -1)
    pipe.zrange(keys.registry("scheduled", queue.name), 0, -1)
    waiting, started, scheduled = pipe.execute()
    ids = [i.decode() for i in waiting] + [member_job_id(m.decode()) for m in started] + [i.decode() for i in scheduled]
    twice = sorted(i for i, n in Counter(ids).items() if n > 1)
    assert not twice, f"ids standing twice across queue/started/scheduled: {twice}"
