"""What people see: a progress bar while a run settles, a summary after."""

from __future__ import annotations

import time

from jobqueue.worker import list_workers

from . import repair
from .display import Display, fields, human_bytes
from .exceptions import WorkersGone
from .local import LocalWorkers
from .runs import Progress, Runs

VANISHED_CHECK = 2.0  # seconds between looks at whether the run's queue still holds anything live


def watch(runs: Runs, run_id: str, local: LocalWorkers | None = None, interval: float = 0.25,
          quiet: bool = False) -> Progress:
    """Poll the run (O(1) Redis commands a refresh) until every URL settled,
    the run was canceled, or it was interrupted while enqueuing and all it
    has settled. Local workers' lines go above the bar; if they all exit
    first, raise WorkersGone. Without local workers, say so when nobody
    takes downloads. Never waits for jobs that do not exist: when the queue
    holds nothing live, URLs whose jobs are gone are settled as failed."""
    progress = runs.progress(run_id)
    queue = runs.queue_of(run_id)
    display = Display(run_id, progress.total, progress.settled, quiet)
    start, start_bytes = time.monotonic(), progress.bytes
    idle = Idle(runs, run_id, queue) if local is None else None
    next_check = time.monotonic() + VANISHED_CHECK
    try:
        while True:
            for line in local.lines() if local is not None else []:
                display.say(line)
            if idle is not None and (hint := idle.hint()):
                display.say(hint)
            rate = (progress.bytes - start_bytes) / max(time.monotonic() - start, 1e-6)
            display.grow(progress.total)
            display.show(progress.settled, fields(progress.done, progress.skipped, progress.failed, progress.bytes, rate))
            if progress.complete or progress.stuck:
                return progress
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + VANISHED_CHECK
                if repair.nothing_live(runs, run_id, queue) and repair.settle_vanished(runs, run_id):
                    display.say(f"Some downloads of run {run_id} have no job any more (their queue was emptied "
                                f"or the jobs deleted): counted as failed; `downloader retry {run_id}` runs them.")
            if local is not None and local.all_gone():
                for line in local.lines():
                    display.say(line)
                raise WorkersGone(f"the local workers exited before run {run_id} was complete "
                                  f"({progress.settled} of {progress.total} settled):\n{local.why_gone()}\n"
                                  f"The run stays: any `downloader work` takes it up.")
            time.sleep(interval)
            progress = runs.progress(run_id)
    finally:
        display.close()


class Idle:
    """Says when no live worker listens on the run's queue for a few seconds
    (looked up every CHECK_EVERY s), and once more when one is back."""

    CHECK_EVERY, GRACE = 1.0, 3.0

    def __init__(self, runs: Runs, run_id: str, queue: str) -> None:
        self.jobs, self.queue = runs.shard(run_id).jobs, queue
        self._next, self._since, self._said = 0.0, None, False

    def hint(self) -> str | None:
        now = time.monotonic()
        if now < self._next:
            return None
        self._next = now + self.CHECK_EVERY
        if [w for w in list_workers(self.jobs, with_jobs=False)
            if self.queue in w.queues and w.responding]:
            self._since = None
            if self._said:
                self._said = False
                return f"A worker is taking downloads from queue {self.queue!r} again."
            return None
        self._since = self._since or now
        if not self._said and now - self._since >= self.GRACE:
            self._said = True
            return (f"No worker is taking downloads from queue {self.queue!r}: start `downloader work` "
                    f"(on any machine that reaches this Redis), or run fetch with --workers N. Still waiting.")
        return None


def summary(runs: Runs, progress: Progress, max_failures: int = 20) -> str:
    lines = [f"Run {progress.run_id} ({progress.source}) into {progress.directory}: {progress.total} file(s)"]
    if progress.describe_state():
        lines.append(f"  {progress.describe_state()}")
    lines += [
             f"  done     {progress.done:>7}   {human_bytes(progress.bytes)}",
             f"  skipped  {progress.skipped:>7}   (already complete)",
             f"  failed   {progress.failed:>7}"]
    pending = progress.total - progress.settled
    if pending:
        lines.append(f"  {'canceled' if progress.canceled else 'pending':<8} {pending:>7}")
    if progress.failed:
        failures = runs.failures(progress.run_id)
        lines.append("Failed downloads (re-run them with `downloader retry " + progress.run_id + "`):")
        for url, reason in list(sorted(failures.items()))[:max_failures]:
            lines.append(f"  {url}\n      {reason}")
        if len(failures) > max_failures:
            lines.append(f"  ... and {len(failures) - max_failures} more (`downloader status {progress.run_id} --json`)")
    return "\n".join(lines)


def workers_view(runs: Runs, run_id: str, queue: str) -> str:
    """The workers listening on the run's queue (in the run's shard)."""
    workers = [w for w in list_workers(runs.shard(run_id).jobs) if queue in w.queues]
    if not workers:
        return f"No live workers on queue {queue!r}: start some with `downloader work`."
    lines = [f"{len(workers)} worker(s) on {queue!r}:"]
    for w in workers:
        beat = f", last beat {w.heartbeat_age:.0f} s ago" if w.heartbeat_age is not None else ""
        lines.append(f"  {w.name} ({w.state}{beat}, {len(w.current_jobs)}/{w.concurrency} busy, "
                     f"{w.successful_job_count} ok, {w.failed_job_count} failed)")
        for _, description in w.current_jobs:
            lines.append(f"      {description}")
    return "\n".join(lines)
