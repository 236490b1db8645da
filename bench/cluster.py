"""How a Redis Cluster spreads jobqueue's load: no-op jobs drained by worker
processes (8 slots each) on a private 3-master cluster, all of them in one
namespace (one master takes every round trip), then spread evenly over one
namespace per master, every worker serving all of them (one lane each, as
`downloader work` does with `shards = 3`). Prints jobs/s and each master's
share of the Redis CPU. A benchmark: it asserts nothing.

    .venv/bin/python bench/cluster.py [--jobs 60000] [--workers 3] [--runs 3]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import median, python, spawn  # noqa: E402
from downloader.shards import tag  # noqa: E402
from jobqueue import Queue  # noqa: E402
from tests.redis_cluster import RedisClusterServers  # noqa: E402

CHUNK = 1000


def masters_cpu(cluster) -> dict[str, float]:
    """Seconds of CPU each master has used."""
    out = {}
    for node in cluster.get_primaries():
        info = node.redis_connection.info("cpu")
        out[node.name] = info["used_cpu_sys"] + info["used_cpu_user"]
    return out


def drain(servers: RedisClusterServers, cluster, prefixes: list[str], jobs: int, workers: int) -> tuple[float, list]:
    """Enqueue ``jobs`` no-op jobs spread over ``prefixes``; drain them with
    ``workers`` processes serving every prefix. Returns (jobs/s, each
    master's share of the Redis CPU the drain used)."""
    queues = [Queue("spread", connection=cluster, prefix=p) for p in prefixes]
    for i, start in enumerate(range(0, jobs, CHUNK)):
        queues[i % len(queues)].enqueue_many([Queue.prepare_data("bench.tasks.noop")
                                              for _ in range(min(CHUNK, jobs - start))])
    before = masters_cpu(cluster)
    started = time.perf_counter()
    args = [a for p in prefixes for a in ("--prefix", p)]
    procs = [spawn(python("-m", "jobqueue", "worker", "spread", "--burst", "-c", "8", "--quiet", "--url",
                          f"redis://127.0.0.1:{servers.ports[i % len(servers.ports)]}", *args))
             for i in range(workers)]
    for proc in procs:
        proc.wait()
    took = time.perf_counter() - started
    after = masters_cpu(cluster)
    used = {name: after[name] - before[name] for name in after}
    total = sum(used.values()) or 1.0
    for node in cluster.get_primaries():
        node.redis_connection.flushall()
    return jobs / took, sorted((used[n] / total for n in used), reverse=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=60_000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    servers = RedisClusterServers(Path(tempfile.mkdtemp(prefix="bench-cluster-"))).start()
    cluster = servers.client()
    layouts = {"one namespace": ["{bench}:"], "one namespace per master": [tag("bench", k, 3) + ":" for k in range(3)]}
    try:
        results: dict[str, list] = {name: [] for name in layouts}
        for _ in range(args.runs):  # the layouts taken turn about
            for name, prefixes in layouts.items():
                results[name].append(drain(servers, cluster, prefixes, args.jobs, args.workers))
        print(f"{args.jobs:,} no-op jobs, {args.workers} worker processes x 8 slots, 3 masters; "
              f"medians of {args.runs}")
        print(f"{'layout':<26} {'jobs/s':>8}  busiest master's share of Redis CPU (then the others)")
        for name, rows in results.items():
            rate = median([r for r, _ in rows])
            shares = [median([s[i] for _, s in rows]) for i in range(3)]
            print(f"{name:<26} {rate:>8,.0f}  " + " / ".join(f"{s:.0%}" for s in shares))
    finally:
        cluster.close()
        servers.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
