"""Throughput: no-op jobs enqueued, then drained by one worker process of
each system, all against one private redis-server in one run.

    ./run.sh bench                 # 3 runs, medians
    .venv/bin/python bench/throughput.py --runs 1 --jobs 5000

Per system: enqueue jobs/s one at a time and batched, drain jobs/s (from the
first job taken to the last one done), Redis commands per job from INFO
commandstats (commands inside Lua scripts count), and ratios to jobqueue.
A benchmark, not a test: quote medians, compare within one run.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PrivateRedis, median, python, spawn, wait_until  # noqa: E402

QUEUE = "bench"


@dataclass
class System:
    label: str
    jobs: int
    queue_key: str             # list the jobs wait in
    kills_worker: bool = False  # no burst mode: stop it when done
    results: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, value: float | None) -> None:
        if value is not None:
            self.results.setdefault(name, []).append(value)

    def get(self, name: str) -> float | None:
        values = self.results.get(name)
        return median(values) if values else None


class JobQueueSystem(System):
    def __init__(self, label: str, jobs: int, worker_args: list[str]) -> None:
        super().__init__(label, jobs, f"jobqueue:queue:{QUEUE}")
        self.worker_args = worker_args

    def setup(self, url: str) -> None:
        import redis
        from jobqueue import Queue
        self.q = Queue(QUEUE, connection=redis.Redis.from_url(url))

    def enqueue_one(self) -> None:
        for _ in range(self.jobs):
            self.q.enqueue("bench.tasks.noop")

    def enqueue_batch(self) -> bool:
        from jobqueue import Queue
        self.q.enqueue_many([Queue.prepare_data("bench.tasks.noop") for _ in range(self.jobs)])
        return True

    def worker(self, url: str):
        return spawn(python("-m", "jobqueue", "worker", QUEUE, "--burst", "--quiet", "--url", url, *self.worker_args))

    def done_count(self, client) -> int:
        return client.zcard(f"jobqueue:registry:finished:{QUEUE}")


class RQSystem(System):
    def __init__(self, label: str, jobs: int, worker_class: str) -> None:
        super().__init__(label, jobs, f"rq:queue:{QUEUE}")
        self.worker_class = worker_class

    def setup(self, url: str) -> None:
        import redis
        import rq
        self.q = rq.Queue(QUEUE, connection=redis.Redis.from_url(url))

    def enqueue_one(self) -> None:
        for _ in range(self.jobs):
            self.q.enqueue("bench.tasks.noop")

    def enqueue_batch(self) -> bool:
        import rq
        self.q.enqueue_many([rq.Queue.prepare_data("bench.tasks.noop") for _ in range(self.jobs)])
        return True

    def worker(self, url: str):
        return spawn(python("-m", "rq.cli", "worker", QUEUE, "--burst", "--quiet", "--url", url,
                            "--worker-class", self.worker_class, "--disable-job-desc-logging"))

    def done_count(self, client) -> int:
        return client.zcard(f"rq:finished:{QUEUE}")


class DramatiqSystem(System):
    def __init__(self, jobs: int) -> None:
        super().__init__("Dramatiq (1 process, 8 threads)", jobs, f"dramatiq:{QUEUE}", kills_worker=True)

    def setup(self, url: str) -> None:
        os.environ["BENCH_REDIS_URL"] = url
        from bench import dramatiq_app
        self.app = dramatiq_app

    def enqueue_one(self) -> None:
        for _ in range(self.jobs):
            self.app.noop.send()

    def enqueue_batch(self) -> bool:
        return False  # the Redis broker has no batch enqueue

    def worker(self, url: str):
        return spawn(python("-m", "dramatiq", "bench.dramatiq_app", "--processes", "1", "--threads", "8"),
                     env={"BENCH_REDIS_URL": url})

    def done_count(self, client) -> int:
        return self.jobs - client.hlen(f"dramatiq:{QUEUE}.msgs")


class HueySystem(System):
    def __init__(self, jobs: int) -> None:
        super().__init__("Huey (8 threads, results off)", jobs, f"huey.redis.{QUEUE}", kills_worker=True)

    def setup(self, url: str) -> None:
        os.environ["BENCH_REDIS_URL"] = url
        from bench import huey_app
        self.app = huey_app

    def enqueue_one(self) -> None:
        for _ in range(self.jobs):
            self.app.noop()

    def enqueue_batch(self) -> bool:
        return False  # no batch enqueue API

    def worker(self, url: str):
        return spawn(python("-m", "huey.bin.huey_consumer", "bench.huey_app.huey", "-w", "8", "-k", "thread", "-q"),
                     env={"BENCH_REDIS_URL": url})

    def done_count(self, client) -> int:
        return self.jobs - client.llen(self.queue_key)  # results are off: an empty queue is the only signal


def measure(system: System, server: PrivateRedis, timeout: float) -> None:
    client, n = server.client, system.jobs
    server.reset()
    start = time.perf_counter()
    system.enqueue_one()
    system.add("enqueue_one", n / (time.perf_counter() - start))

    worker = system.worker(server.url)
    polls = wait_until(lambda: client.llen(system.queue_key) < n, timeout, interval=0.002)
    t0 = time.perf_counter()
    taken_before = n - client.llen(system.queue_key)
    polls += 1 + wait_until(lambda: system.done_count(client) >= n, timeout, interval=0.01)
    t1 = time.perf_counter()
    if system.kills_worker:
        worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=60)
    system.add("drain", (n - taken_before) / max(t1 - t0, 1e-9))
    system.add("commands", (server.commands() - polls) / n)

    server.reset()
    start = time.perf_counter()
    if system.enqueue_batch():
        system.add("enqueue_batch", n / (time.perf_counter() - start))
    server.reset()


def fmt(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def report(systems: list[System], runs: int, version: str) -> str:
    ours = systems[0]
    lines = [f"Throughput, no-op jobs, one worker process each, Redis {version}, medians of {runs} run(s)", "",
             "| system | jobs | enqueue/s (one) | enqueue/s (batch) | drain jobs/s | Redis cmds/job "
             "| jobqueue drain is | jobqueue batch enqueue is |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in systems:
        drain_ratio = ours.get("drain") / s.get("drain") if s.get("drain") else None
        batch_ratio = ours.get("enqueue_batch") / s.get("enqueue_batch") if s.get("enqueue_batch") else None
        lines.append(f"| {s.label} | {s.jobs:,} | {fmt(s.get('enqueue_one'))} | {fmt(s.get('enqueue_batch'))} | "
                     f"{fmt(s.get('drain'))} | {fmt(s.get('commands'), 1)} | "
                     f"{'-' if s is ours else fmt(drain_ratio, 1) + 'x'} | "
                     f"{'-' if s is ours or batch_ratio is None else fmt(batch_ratio, 1) + 'x'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20000, help="jobs per fast system [20000]")
    parser.add_argument("--slow-jobs", type=int, default=2000,
                        help="jobs for the forking workers (RQ Worker, jobqueue --fork) [2000]")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", help="comma-separated substrings of system labels to run")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    systems: list[System] = [
        JobQueueSystem("jobqueue (1 process, 8 thread slots)", args.jobs, ["-c", "8"]),
        JobQueueSystem("jobqueue --fork (1 work horse at a time)", args.slow_jobs, ["--fork"]),
        JobQueueSystem("jobqueue --fork -c 8", args.slow_jobs, ["--fork", "-c", "8"]),
        RQSystem("RQ SimpleWorker", args.jobs // 4, "rq.worker.SimpleWorker"),
        RQSystem("RQ Worker (forking)", args.slow_jobs // 2, "rq.worker.Worker"),
    ]
    try:
        import dramatiq  # noqa: F401
        systems.append(DramatiqSystem(args.jobs))
    except ImportError:
        print("Dramatiq not installed: skipped (./run.sh bench installs the peers)", file=sys.stderr)
    try:
        import huey  # noqa: F401
        systems.append(HueySystem(args.jobs))
    except ImportError:
        print("Huey not installed: skipped", file=sys.stderr)
    if args.only:
        wanted = [w.strip().lower() for w in args.only.split(",")]
        systems = [systems[0]] + [s for s in systems[1:] if any(w in s.label.lower() for w in wanted)]

    server = PrivateRedis()
    try:
        for system in systems:
            system.setup(server.url)
        for run in range(args.runs):
            for system in systems:
                print(f"run {run + 1}/{args.runs}: {system.label} ({system.jobs} jobs)...", file=sys.stderr, flush=True)
                measure(system, server, args.timeout)
        print(report(systems, args.runs, server.version))
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
