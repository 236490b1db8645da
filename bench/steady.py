"""Where a download's CPU goes in steady state: two `downloader work`
processes drain one run of N files (64 KiB, from nginx, to /dev/shm, the
per-host limiter off), and the CPU each part of the machine spent is read
from /proc and Redis's INFO: the workers, Redis and nginx, per file, and how
busy the two cores were. Started after the workers are up, so no imports
are counted.

    .venv/bin/python bench/steady.py --files 20000 --rounds 3
    .venv/bin/python bench/steady.py --trees /tmp/old-checkout,. --rounds 6   # side by side, turn about

With ``--trees`` the workers of each round run that checkout's code (both
trees' medians are printed): the way to compare two versions on a VM whose
speed drifts within the hour. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PrivateRedis, python, spawn  # noqa: E402
from bench.download import Server  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_of(pids: list[int]) -> float:
    """User + sys seconds of processes (their threads included)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def busy() -> tuple[int, int]:
    """(busy, all) jiffies of the machine."""
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(values) - values[3] - values[4], sum(values)


def one_round(tree: str, files: int, server: Server, redis: PrivateRedis) -> dict[str, float]:
    from downloader.config import Settings
    from downloader.runs import Runs
    from jobqueue import Worker
    redis.client.flushall()
    urls = [f"{u}?r={k}" for k in range(files // len(server.urls) + 1) for u in server.urls][:files]
    target = tempfile.mkdtemp(dir="/dev/shm")
    env = {"DOWNLOADER_REDIS_URL": redis.url, "DOWNLOADER_PER_HOST": "0", "PYTHONPATH": tree}
    workers = [spawn(python("-m", "downloader", "work", "--quiet", "--dir", target), env=env, cwd=tree)
               for _ in range(2)]
    try:
        while Worker.count(connection=redis.client) < 2:
            time.sleep(0.02)
        runs = Runs(redis.client)
        nginx = [server.proc.pid] + [int(c) for t in os.listdir(f"/proc/{server.proc.pid}/task")
                                     for c in Path(f"/proc/{server.proc.pid}/task/{t}/children").read_text().split()]
        redis_cpu = lambda: sum(redis.client.info("cpu")[k] for k in ("used_cpu_user", "used_cpu_sys"))  # noqa: E731
        start = time.perf_counter()
        run, _ = runs.create(urls, "steady", Settings(dir=target, max_size=4 << 30, job_timeout=3600))
        w0, n0, r0, (b0, a0) = cpu_of([w.pid for w in workers]), cpu_of(nginx), redis_cpu(), busy()
        while not runs.progress(run).complete:
            time.sleep(0.02)
        wall = time.perf_counter() - start
        w1, n1, r1, (b1, a1) = cpu_of([w.pid for w in workers]), cpu_of(nginx), redis_cpu(), busy()
        return {"files/s": files / wall, "worker": (w1 - w0) * 1000 / files, "redis": (r1 - r0) * 1000 / files,
                "nginx": (n1 - n0) * 1000 / files, "busy": (b1 - b0) * 100 / max(1, a1 - a0)}
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait()
        for name in os.listdir(target):
            os.unlink(os.path.join(target, name))
        os.rmdir(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trees", default=".", help="comma-separated checkouts whose code the workers run, in turn")
    args = parser.parse_args()
    trees = [str(Path(t).resolve()) for t in args.trees.split(",")]
    server, redis = Server(2000, 64 << 10, 0.0, prefer_nginx=True), PrivateRedis()
    print(f"{args.files} files of 64 KiB from {server.kind}, 2 workers, Redis {redis.version}")
    results: dict[str, list[dict[str, float]]] = {t: [] for t in trees}
    try:
        for n in range(args.rounds):
            for tree in trees if n % 2 == 0 else trees[::-1]:
                got = one_round(tree, args.files, server, redis)
                results[tree].append(got)
                print(f"  {tree}: {got['files/s']:,.0f} files/s, worker {got['worker']:.3f} ms/file, "
                      f"Redis {got['redis']:.3f}, nginx {got['nginx']:.3f}, cores {got['busy']:.0f}% busy", flush=True)
    finally:
        redis.close()
        server.close()
    print(f"\nMedians of {args.rounds} round(s):\n")
    print("| code | files/s | worker CPU ms/file | Redis ms/file | nginx ms/file | cores busy |")
    print("|---|---:|---:|---:|---:|---:|")
    for tree, got in results.items():
        med = {k: statistics.median(g[k] for g in got) for k in got[0]}
        print(f"| {tree} | {med['files/s']:,.0f} | {med['worker']:.3f} | {med['redis']:.3f} | {med['nginx']:.3f} "
              f"| {med['busy']:.0f}% |")


if __name__ == "__main__":
    main()
