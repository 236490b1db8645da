"""Repairing runs: re-run failed downloads, and settle URLs whose jobs are gone."""

from __future__ import annotations

import difflib
from typing import Iterable

from jobqueue import Job, JobStatus, Queue
from jobqueue.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from .config import Settings
from .exceptions import NotInRun, RunCanceled
from .keys import STATES
from .producer import BATCH, write_batch
from .runs import Runs, job_id, reason_of

LIVE = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED}  # a job to leave alone
GONE = "its job is gone (its queue was emptied, or the job deleted); `downloader retry` enqueues it again"


def retry(runs: Runs, run_id: str, settings: Settings, only: Iterable[str] | None = None) -> list[str]:
    """Re-run the failed URLs of a run (or just ``only``, which must be URLs
    of the run): failed jobs go back on their queue; those whose failure
    record expired are enqueued anew, and a job that already stands in a
    queue or runs (`jobqueue requeue` came first) is left as it is: never
    a second one."""
    if runs.progress(run_id).canceled:
        raise RunCanceled(f"run {run_id} was canceled; its downloads are not retried (start a new run)")
    failed = set(runs.failures(run_id))
    if only is not None:
        only = list(only)
        _check_in_run(runs, run_id, only)
    urls = [u for u in (only if only is not None else sorted(failed)) if u in failed]
    if not urls:
        return []
    job_ids = {url: job_id(run_id, url) for url in urls}
    runs.mark_many(run_id, [(url, "pending", "") for url in urls])
    queue_name = runs.queue_of(run_id)
    jobs = runs.shard(run_id).jobs
    requeued = set(FailedJobRegistry(queue_name, connection=jobs).requeue_many([job_ids[u] for u in urls]))
    gone = [u for u in urls if job_ids[u] not in requeued]  # (one that is live, enqueue.lua refuses to repeat)
    if gone:
        target, shown = runs.info(run_id, "target", "directory")  # where the run's files go, as its jobs say
        where = settings.with_overrides(queue=queue_name, dir=target or shown or settings.dir)
        entries = list(zip(gone, runs.extras_of(run_id, gone)))  # same names, same sidecars
        for start in range(0, len(entries), BATCH):
            write_batch(runs, run_id, where, entries[start:start + BATCH], only_new=False)
    return urls


def _check_in_run(runs: Runs, run_id: str, urls: list[str]) -> None:
    unknown = [url for url, known in zip(urls, runs.extras_of(run_id, urls)) if known is None]
    if not unknown:
        return
    run_urls = [u for chunk in runs.job_ids(run_id) for u, _ in chunk]
    hints = []
    for url in unknown:
        close = difflib.get_close_matches(url, run_urls, n=3, cutoff=0.5)
        hints.append(f"  {url}" + (f"\n    did you mean: {', '.join(close)}" if close else ""))
    raise NotInRun(f"not URL(s) of run {run_id}; nothing was re-enqueued:\n" + "\n".join(hints))


def nothing_live(runs: Runs, run_id: str, queue_name: str) -> bool:
    """No job waits, runs or is scheduled on the run's queue (three O(1)
    commands): a run with pending URLs then waits for jobs that do not exist."""
    jobs = runs.shard(run_id).jobs
    pipe = runs.connection.pipeline(transaction=False)
    pipe.llen(Queue(queue_name, connection=jobs).key)
    for registry in (StartedJobRegistry, ScheduledJobRegistry):
        pipe.zcard(registry(queue_name, connection=jobs).key)
    return not any(pipe.execute())


def settle_vanished(runs: Runs, run_id: str) -> int:
    """Mark failed, with the reason, every unsettled URL of the run whose job
    cannot run any more (gone, canceled, failed without a word): the run's
    counts then never wait for it, and `retry` can run it again. Reads the
    whole run, so it is called only when its queue has nothing live."""
    connection, marked = runs.connection, 0
    for chunk in runs.job_ids(run_id):
        urls = [url for url, _ in chunk]
        pipe = connection.pipeline(transaction=False)
        for state in STATES:
            pipe.smismember(runs.keys_of(run_id).state(run_id, state), urls)
        settled = [any(flags) for flags in zip(*pipe.execute())]
        unsettled = [pair for pair, done in zip(chunk, settled) if not done]
        jobs = Job.fetch_many([job_id for _, job_id in unsettled], connection=runs.shard(run_id).jobs)
        marks = [(url, "failed", why) for (url, _), job in zip(unsettled, jobs) if (why := _why_not_live(job))]
        if marks:
            runs.mark_many(run_id, marks)
            marked += len(marks)
    return marked


def _why_not_live(job: Job | None) -> str:
    if job is None:
        return GONE
    status = job.get_status(refresh=False)
    if status in LIVE:
        return ""
    if status == JobStatus.CANCELED:
        return "its job was canceled (`jobqueue` cancel); `downloader retry` enqueues it again"
    if status == JobStatus.FAILED:
        last = (job.exc_info or "failed").strip().splitlines()[-1]
        return reason_of(last)
    return "its job finished without recording what became of the file; `downloader retry` runs it again"
