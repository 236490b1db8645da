"""A fleet: N jobqueue worker processes x 8 slots. Idle on an empty queue,
it prints the Redis commands a second the fleet costs, and how long after an
enqueue an idle worker starts the job (median and worst of 10, spaced out).
Under load, it prints Redis's CPU (user + sys) per job while the same fleet
drains --jobs no-op jobs (enqueued while the fleet is paused, so the enqueue
is not counted), medians of --runs. Issue 14's targets: 50 x 8 idle cost
Redis <= 100 commands/s in all and wake within 100 ms of an enqueue; under
load, Redis CPU per job <= 0.05 ms.

    .venv/bin/python bench/idle_fleet.py [--workers 50] [--idle 20] [--jobs 50000] [--runs 3]
"""

import argparse
import random
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PrivateRedis, median, python, spawn  # noqa: E402
from bench.scale import CHUNK  # noqa: E402
from jobqueue import Queue, Worker  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idleness measured")
    parser.add_argument("--jobs", type=int, default=50_000, help="no-op jobs the fleet drains under load (0: skip)")
    parser.add_argument("--runs", type=int, default=3, help="runs under load")
    args = parser.parse_args()
    redis = PrivateRedis()
    procs = []
    try:
        procs = [spawn(python("-m", "jobqueue", "worker", "idle", "-c", "8", "--quiet", "--url", redis.url))
                 for _ in range(args.workers)]
        started = time.monotonic()
        while Worker.count(connection=redis.client) < args.workers:
            if time.monotonic() - started > 300:
                raise TimeoutError("the fleet did not start")
            time.sleep(0.2)
        time.sleep(5)  # every worker past its start-up, waiting
        redis.client.config_resetstat()
        time.sleep(args.idle)
        idle = redis.commands() / args.idle
        stats = redis.client.info("commandstats")
        split = sorted(((v["calls"] / args.idle, k.removeprefix("cmdstat_").upper()) for k, v in stats.items()
                        if k != "cmdstat_info"), reverse=True)
        queue, waits = Queue("idle", connection=redis.client), []
        for _ in range(10):
            time.sleep(random.uniform(1, 3))
            sent = time.time()
            job = queue.enqueue("bench.tasks.stamp")
            deadline = time.monotonic() + 30
            while job.return_value() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            waits.append((job.return_value() or float("nan")) - sent)
        print(f"Redis {redis.version}\n")
        print("| workers x slots | idle Redis commands/s (all) | wake-up median ms | worst ms |")
        print("|---|---:|---:|---:|")
        print(f"| {args.workers} x 8 | {idle:.0f} | {median(waits) * 1000:.0f} | {max(waits) * 1000:.0f} |")
        print("\nIdle commands a second, by command (inside scripts too): "
              + ", ".join(f"{name} {rate:.1f}" for rate, name in split[:8]))
        if args.jobs:
            loaded = [under_load(redis, queue, procs, args.jobs) for _ in range(args.runs)]
            print(f"\nUnder load ({args.jobs:,} no-op jobs, medians of {args.runs}; each run as printed: "
                  + "; ".join(f"{cpu * 1e6:.1f} us, {rate:,.0f} jobs/s" for cpu, rate, _ in loaded) + ")\n")
            print("| workers x slots | Redis CPU per job (user + sys) | jobs/s | jobs per script call |")
            print("|---|---:|---:|---:|")
            print(f"| {args.workers} x 8 | {median([c for c, _, _ in loaded]) * 1000:.3f} ms "
                  f"| {median([r for _, r, _ in loaded]):,.0f} | {median([t for _, _, t in loaded]):.1f} |")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        redis.close()
    return 0


def under_load(redis: PrivateRedis, queue: Queue, procs: list, jobs: int) -> tuple[float, float, float]:
    """(Redis CPU seconds per job, jobs/s, jobs per EVALSHA) while the fleet drains ``jobs``."""
    for p in procs:
        p.send_signal(signal.SIGSTOP)
    try:
        done = queue.finished_job_registry.count + jobs
        for start in range(0, jobs, CHUNK):
            queue.enqueue_many([Queue.prepare_data("bench.tasks.noop") for _ in range(min(CHUNK, jobs - start))])
        before, calls = redis.client.info("cpu"), redis.client.info("commandstats")["cmdstat_evalsha"]["calls"]
        started = time.perf_counter()
    finally:
        for p in procs:
            p.send_signal(signal.SIGCONT)
    while queue.finished_job_registry.count < done:
        time.sleep(0.05)
    wall, after = time.perf_counter() - started, redis.client.info("cpu")
    round_trips = redis.client.info("commandstats")["cmdstat_evalsha"]["calls"] - calls  # finish+fetch, heartbeats, passes
    cpu = sum(after[k] - before[k] for k in ("used_cpu_user", "used_cpu_sys"))
    return cpu / jobs, jobs / wall, jobs / max(round_trips, 1)


if __name__ == "__main__":
    sys.exit(main())
