"""An idle fleet: N jobqueue worker processes x 8 slots waiting on an empty
queue. Prints the Redis commands a second the fleet costs while idle, and
how long after an enqueue an idle worker starts the job (median and worst
of 10, spaced out). Issue 14's targets: 50 x 8 idle cost Redis <= 100
commands/s in all, and wake within 100 ms of an enqueue.

    .venv/bin/python bench/idle_fleet.py [--workers 50] [--idle 20]
"""

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PrivateRedis, median, python, spawn  # noqa: E402
from jobqueue import Queue, Worker  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idleness measured")
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
        print("| workers x slots | idle Redis commands/s (all) | wake-up median ms | worst ms |")
        print("|---|---:|---:|---:|")
        print(f"| {args.workers} x 8 | {idle:.0f} | {median(waits) * 1000:.0f} | {max(waits) * 1000:.0f} |")
        print("\nIdle commands a second, by command (inside scripts too): "
              + ", ".join(f"{name} {rate:.1f}" for rate, name in split[:8]))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        redis.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
