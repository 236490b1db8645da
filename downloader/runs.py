"""Runs: one `fetch` = one run, whose progress any machine can read in O(1)."""

from __future__ import annotations

import difflib
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from importlib import resources
from typing import Iterable

import redis

from jobqueue import Job, JobStatus, Queue, Retry, Script
from jobqueue.backend import text, text_dict
from jobqueue.registry import FailedJobRegistry

from . import disk
from .config import Settings
from .exceptions import NotInRun, RunNotFound, Unreachable
from .keys import STATES, Keys
from .naming import file_name
from .transfer import discard_parts

_by_connection: dict[int, "Runs"] = {}
MARK = Script("downloader.mark", resources.files(__package__).joinpath("mark.lua").read_text())
DOWNLOAD_FUNC = "downloader.download.download_link"
ENQUEUE_CHUNK = 200
LIVE = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED}  # a job to leave alone


@dataclass
class Progress:
    run_id: str
    total: int
    done: int
    skipped: int
    failed: int
    bytes: int
    created: float = 0.0
    source: str = ""
    directory: str = ""

    @property
    def settled(self) -> int:
        return self.done + self.skipped + self.failed

    @property
    def complete(self) -> bool:
        return self.settled >= self.total


class Runs:
    def __init__(self, connection: redis.Redis, keys: Keys | None = None) -> None:
        self.connection = connection
        self.keys = keys or Keys()

    @classmethod
    def of(cls, connection: redis.Redis) -> "Runs":
        """One per client, reused by every download a worker runs."""
        runs = _by_connection.get(id(connection))
        if runs is None or runs.connection is not connection:
            runs = _by_connection[id(connection)] = cls(connection)
        return runs

    # -- creating a run ---------------------------------------------------------------

    def create(self, urls: Iterable[str], source: str, settings: Settings) -> tuple[str, list[str]]:
        """Enqueue one job per unique URL; returns (run id, the URLs enqueued)."""
        unique = list(dict.fromkeys(u.strip() for u in urls if u.strip()))
        run_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
        job_ids = {url: f"dl-{run_id}-{hashlib.sha1(url.encode()).hexdigest()[:16]}" for url in unique}
        shown, carried = disk.placement(settings.dir, settings.root)
        settings = settings.with_overrides(dir=carried)
        pipe = self.connection.pipeline(transaction=True)  # the run appears whole, with its URL list
        pipe.hset(self.keys.run(run_id), mapping={
            "id": run_id, "created": time.time(), "source": source, "directory": shown, "target": carried,
            "queue": settings.queue, "total": len(unique), "bytes": 0})
        if job_ids:
            pipe.hset(self.keys.urls(run_id), mapping=job_ids)
        pipe.zadd(self.keys.runs, {run_id: time.time()})
        pipe.execute()
        self.enqueue(run_id, unique, job_ids, settings)
        return run_id, unique

    def enqueue(self, run_id: str, urls: list[str], job_ids: dict[str, str], settings: Settings) -> None:
        queue = Queue(settings.queue, connection=self.connection)
        retry = Retry(max=settings.retries, interval=settings.retry_intervals) if settings.retries > 0 else None
        options = {
            "run": run_id, "max_size": settings.max_size, "connect_timeout": settings.connect_timeout,
            "read_timeout": settings.read_timeout, "check_image": settings.check_image,
            "user_agent": settings.user_agent, "max_retry_after": settings.max_retry_after,
        }
        for start in range(0, len(urls), ENQUEUE_CHUNK):  # workers start on the first chunk, not after the last
            queue.enqueue_many([
                Queue.prepare_data(DOWNLOAD_FUNC, (settings.dir, url), options, job_id=job_ids[url], retry=retry,
                                   timeout=settings.job_timeout, on_failure="downloader.runs.on_download_failed",
                                   description=f"download {url}")
                for url in urls[start:start + ENQUEUE_CHUNK]
            ])

    # -- recording outcomes -----------------------------------------------------------------

    def mark(self, run_id: str, url: str, state: str, nbytes: int = 0, reason: str = "", job: Job | None = None) -> None:
        """With the running ``job``, the mark rides on the worker's round trip
        that records the job's success (mark.lua is idempotent)."""
        argv = (self.keys.run(run_id), url, state, nbytes, reason)
        if job is not None:
            job.write_on_success(MARK, *argv)
        else:
            MARK(self.connection, json.dumps([argv]))

    # -- reading ----------------------------------------------------------------------------

    def progress(self, run_id: str) -> Progress:
        """Four O(1) commands in one round trip, whatever the run's size."""
        pipe = self.connection.pipeline(transaction=False)
        pipe.hmget(self.keys.run(run_id), "total", "bytes", "created", "source", "directory")
        for state in STATES:
            pipe.scard(self.keys.state(run_id, state))
        (total, nbytes, created, source, directory), done, skipped, failed = pipe.execute()
        if total is None:
            raise RunNotFound(f"no run {run_id!r}; `downloader runs` lists them")
        return Progress(run_id, int(total), done, skipped, failed, int(nbytes or 0), float(created or 0),
                        text(source) or "", text(directory) or "")

    def latest(self) -> str:
        newest = self.connection.zrevrange(self.keys.runs, 0, 0)
        if not newest:
            raise RunNotFound("no runs yet; start one with `downloader fetch`")
        return text(newest[0])

    def all(self, limit: int = 50) -> list[Progress]:
        return [self.progress(text(r)) for r in self.connection.zrevrange(self.keys.runs, 0, limit - 1)]

    def failures(self, run_id: str) -> dict[str, str]:
        return text_dict(self.connection.hgetall(self.keys.reasons(run_id)))

    def queue_of(self, run_id: str) -> str:
        return text(self.connection.hget(self.keys.run(run_id), "queue")) or "downloads"

    # -- retrying ----------------------------------------------------------------------------

    def retry(self, run_id: str, settings: Settings, only: Iterable[str] | None = None) -> list[str]:
        """Re-run the failed URLs of a run (or just ``only``, which must be URLs
        of the run): failed jobs go back on their queue; those whose failure
        record expired are enqueued anew, and a job that already stands in a
        queue or runs (`jobqueue requeue` came first) is left as it is: never
        a second one."""
        self.progress(run_id)  # raises RunNotFound
        failed = set(self.failures(run_id))
        if only is not None:
            only = list(only)
            self._check_in_run(run_id, only)
        urls = [u for u in (only if only is not None else sorted(failed)) if u in failed]
        if not urls:
            return []
        job_ids = dict(zip(urls, (text(j) for j in self.connection.hmget(self.keys.urls(run_id), urls))))
        for url in urls:
            self.mark(run_id, url, "pending")
        queue_name = self.queue_of(run_id)
        registry = FailedJobRegistry(queue_name, connection=self.connection)
        requeued = set(registry.requeue_many([job_ids[u] for u in urls]))
        gone = [u for u in urls if job_ids[u] not in requeued]
        live = {job.id for job in Job.fetch_many([job_ids[u] for u in gone], connection=self.connection)
                if job is not None and job.get_status(refresh=False) in LIVE}
        gone = [u for u in gone if job_ids[u] not in live]
        if gone:
            target, shown = self.connection.hmget(self.keys.run(run_id), "target", "directory")
            directory = text(target) or text(shown) or settings.dir   # where the run's files go, as its jobs say
            self.enqueue(run_id, gone, job_ids, settings.with_overrides(queue=queue_name, dir=directory))
        return urls

    def _check_in_run(self, run_id: str, urls: list[str]) -> None:
        known = self.connection.hmget(self.keys.urls(run_id), urls)
        unknown = [u for u, job_id in zip(urls, known) if job_id is None]
        if not unknown:
            return
        run_urls = [text(u) for u in self.connection.hkeys(self.keys.urls(run_id))]
        hints = []
        for url in unknown:
            close = difflib.get_close_matches(url, run_urls, n=3, cutoff=0.5)
            hints.append(f"  {url}" + (f"\n    did you mean: {', '.join(close)}" if close else ""))
        raise NotInRun(f"not URL(s) of run {run_id}; nothing was re-enqueued:\n" + "\n".join(hints))


def on_download_failed(job: Job, connection: redis.Redis, exc_type, exc, traceback) -> None:
    """jobqueue calls this in the worker once a download has failed for good:
    the run learns why, and the partial file goes."""
    directory, link = job.args[0], job.args[1]
    try:
        discard_parts(disk.directory_for(directory), file_name(link), job.id, job.attempt)
    except Unreachable:
        pass  # nothing of it can be here

    run_id = job.kwargs.get("run")
    if run_id:
        Runs.of(connection).mark(run_id, link, "failed", reason=_reason(str(exc)))


def _reason(text: str) -> str:
    """'downloader.exceptions.PermanentDownloadError: HTTP 404' -> 'HTTP 404'."""
    name, sep, message = text.partition(": ")
    if sep and name.replace(".", "").replace("_", "").isalnum() and name.split(".")[-1][:1].isupper():
        return message
    return text
