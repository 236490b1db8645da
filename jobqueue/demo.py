"""The main job of ``./run.sh`` until the downloader lands: enqueue a batch
of jobs on the embedded Redis, drain them with two burst worker processes,
and print what happened."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time

from .queue import Queue


def checksum(text: str, rounds: int) -> str:
    """The demo job: a little CPU work with a result worth printing."""
    digest = text.encode()
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()[:16]


def main(jobs: int = 200) -> int:
    queue = Queue("demo")
    queue.empty()
    started = time.monotonic()
    enqueued = queue.enqueue_many([Queue.prepare_data("jobqueue.demo.checksum", (f"item-{i}", 1000)) for i in range(jobs)])
    print(f"Enqueued {len(enqueued)} jobs on queue 'demo' ({queue.connection.connection_pool.connection_kwargs['host']})")
    workers = [subprocess.Popen([sys.executable, "-m", "jobqueue", "worker", "demo", "--burst", "-c", "4", "--quiet"])
               for _ in range(2)]
    codes = [w.wait() for w in workers]
    elapsed = time.monotonic() - started
    finished, failed = queue.finished_job_registry.count, queue.failed_job_registry.count
    print(f"2 burst workers drained the queue in {elapsed:.2f} s: {finished} finished, {failed} failed")
    for job in enqueued[:3]:
        print(f"  {job.description} -> {job.return_value()}")
    return 0 if failed == 0 and not any(codes) and finished >= jobs else 1


if __name__ == "__main__":
    sys.exit(main())
