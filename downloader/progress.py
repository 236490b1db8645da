"""What people see: a progress bar while a run settles, a summary after."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

from jobqueue.worker import list_workers

from .runs import Progress, Runs


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def watch(runs: Runs, run_id: str, interval: float = 0.25) -> Progress:
    """Poll the run (O(1) Redis commands a refresh) until every URL settled."""
    progress = runs.progress(run_id)
    bar = tqdm(total=progress.total, initial=progress.settled, unit="file", desc=f"run {run_id}",
               dynamic_ncols=True, file=sys.stderr, smoothing=0.1)
    start, start_bytes = time.monotonic(), progress.bytes
    try:
        while True:
            elapsed = max(time.monotonic() - start, 1e-6)
            bar.set_postfix_str(f"done {progress.done}, skipped {progress.skipped}, failed {progress.failed}, "
                                f"{human_bytes(progress.bytes)} at {human_bytes((progress.bytes - start_bytes) / elapsed)}/s",
                                refresh=False)
            bar.update(progress.settled - bar.n)
            if progress.complete:
                return progress
            time.sleep(interval)
            progress = runs.progress(run_id)
    finally:
        bar.close()


def summary(runs: Runs, progress: Progress, max_failures: int = 20) -> str:
    lines = [f"Run {progress.run_id} ({progress.source}) into {progress.directory}: {progress.total} file(s)",
             f"  done     {progress.done:>7}   {human_bytes(progress.bytes)}",
             f"  skipped  {progress.skipped:>7}   (already complete)",
             f"  failed   {progress.failed:>7}"]
    pending = progress.total - progress.settled
    if pending:
        lines.append(f"  pending  {pending:>7}")
    if progress.failed:
        failures = runs.failures(progress.run_id)
        lines.append("Failed downloads (re-run them with `downloader retry " + progress.run_id + "`):")
        for url, reason in list(sorted(failures.items()))[:max_failures]:
            lines.append(f"  {url}\n      {reason}")
        if len(failures) > max_failures:
            lines.append(f"  ... and {len(failures) - max_failures} more (`downloader status {progress.run_id} --json`)")
    return "\n".join(lines)


def workers_view(runs: Runs, queue: str) -> str:
    workers = [w for w in list_workers(runs.connection) if queue in w.queues]
    if not workers:
        return f"No live workers on queue {queue!r}: start some with `downloader work`."
    lines = [f"{len(workers)} worker(s) on {queue!r}:"]
    for w in workers:
        lines.append(f"  {w.name} ({w.state}, {len(w.current_jobs)}/{w.concurrency} busy, "
                     f"{w.successful_job_count} ok, {w.failed_job_count} failed)")
        for _, description in w.current_jobs:
            lines.append(f"      {description}")
    return "\n".join(lines)
