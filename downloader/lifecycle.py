"""Ending runs: cancel one (nothing of it runs any more), delete one (no
trace of it stays), prune the complete ones. Expiry needs no code here: a
complete run's keys carry its TTL (scripts/run.lua)."""

from __future__ import annotations

import time

from .exceptions import RunNotFound
from .runs import DELETED, FORGET, Runs

TOMBSTONE_TTL = 86400  # a deleted run's id answers "deleted" this long (and stops a producer still at work)


def cancel(runs: Runs, run_id: str) -> int:
    """Cancel every job of the run that waits or runs; returns how many.
    The state goes first: a producer still enqueueing checks it after each
    batch, so a batch this cancel did not see is withdrawn by the producer.
    A running download learns it at its worker's next heartbeat (its attempt
    is no longer current), stops its transfer and deletes its part file."""
    if runs.set_state(run_id, "canceled", time.time()) is None:
        runs.progress(run_id)  # raises RunNotFound with the reason
    queue_name, keep = runs.info(run_id, "queue", "keep")
    queue = runs.queue(run_id, queue_name or "downloads")
    return sum(queue.cancel_many([job_id for _, job_id in chunk], failure_ttl=int(float(keep or 0)) or None)
               for chunk in runs.job_ids(run_id))


def delete(runs: Runs, run_id: str) -> int:
    """Stop the run as ``cancel`` does, delete its jobs and its records;
    returns how many jobs were deleted. Its id stays a tombstone for a day,
    so a late producer or status learns it was deleted (files on disk stay)."""
    cancel(runs, run_id)
    queue = runs.queue(run_id)
    deleted = sum(queue.delete_many([job_id for _, job_id in chunk]) for chunk in runs.job_ids(run_id))
    keys = runs.keys_of(run_id)
    run_key, *others = keys.all_of(run_id)  # records and index go together; the tombstone replaces them
    FORGET(runs.connection, keys.runs, run_id, DELETED, TOMBSTONE_TTL, run_key, *others, keys=(run_key,))
    return deleted


def prune(runs: Runs, older_than: float = 0.0) -> list[str]:
    """Delete every complete run (canceled ones too) that completed at least
    ``older_than`` seconds ago, by Redis's clock; returns their ids. A run
    still enqueueing, interrupted or waiting for downloads is kept."""
    now = runs.shards[0].jobs.time()
    pruned = []
    for progress in runs.all(limit=10**9):
        completed = runs.info(progress.run_id, "completed")[0]
        if progress.complete and completed and now - float(completed) >= older_than:
            try:
                delete(runs, progress.run_id)
            except RunNotFound:
                continue  # expired or deleted meanwhile
            pruned.append(progress.run_id)
    return pruned
