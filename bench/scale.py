"""Issue 14's figures at scale, on a private Redis: what a waiting job costs
Redis (jobqueue's no-op job beside RQ's and Dramatiq's, a downloader job),
how fast `fetch --links` enqueues and in how much memory, and how fast
`status` and `jobqueue info` answer at that depth, and what a job costs
Redis's CPU when it runs; with --end-to-end N, a run of N links from a
local nginx, downloads included (`fetch --links --workers 2`). The idle fleet
has its own script (bench/idle_fleet.py).

    .venv/bin/python bench/scale.py [--noop 1000000] [--links 1000000]
    .venv/bin/python bench/scale.py --noop 0 --links 0 --load 0 --end-to-end 1000000
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, PrivateRedis, median, peak_rss_mb, python, spawn  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from downloader.cli import main as downloader_cli  # noqa: E402
from jobqueue import Queue  # noqa: E402
from jobqueue.cli import main as jobqueue_cli  # noqa: E402

CHUNK = 10_000


def per_job(redis: PrivateRedis, enqueue, n: int) -> tuple[float, float]:
    """(Redis bytes per waiting job, jobs enqueued a second)."""
    redis.reset()
    before = redis.client.info("memory")["used_memory"]
    start = time.perf_counter()
    enqueue(n)
    took = time.perf_counter() - start
    return (redis.client.info("memory")["used_memory"] - before) / n, n / took


def jobqueue_noop(redis: PrivateRedis):
    queue = Queue("scale", connection=redis.client)

    def enqueue(n: int) -> None:
        for start in range(0, n, CHUNK):
            queue.enqueue_many([Queue.prepare_data("bench.tasks.noop") for _ in range(min(CHUNK, n - start))])
    return enqueue


def rq_noop(redis: PrivateRedis):
    import rq
    queue = rq.Queue("scale", connection=redis.client)

    def enqueue(n: int) -> None:
        for start in range(0, n, CHUNK):
            with queue.connection.pipeline() as pipe:
                queue.enqueue_many([rq.Queue.prepare_data("bench.tasks.noop") for _ in range(min(CHUNK, n - start))],
                                   pipeline=pipe)
                pipe.execute()
    return enqueue


def dramatiq_noop(redis: PrivateRedis):
    os.environ["BENCH_REDIS_URL"] = redis.url
    from bench import dramatiq_app

    def enqueue(n: int) -> None:
        for _ in range(n):  # its Redis broker has no batch enqueue
            dramatiq_app.noop.send()
    return enqueue


def under_load(redis: PrivateRedis, n: int) -> tuple[float, float]:
    """(Redis CPU ms per job, jobs/s) while 2 workers x 8 slots run ``n``
    waiting no-op jobs: what each job costs Redis when it runs."""
    redis.reset()
    jobqueue_noop(redis)(n)
    before = redis.client.info("cpu")
    start = time.perf_counter()
    workers = [spawn(python("-m", "jobqueue", "worker", "scale", "--burst", "-c", "8", "--quiet", "--url", redis.url))
               for _ in range(2)]
    for worker in workers:
        worker.wait()
    took = time.perf_counter() - start
    after = redis.client.info("cpu")
    cpu = sum(after[k] - before[k] for k in ("used_cpu_sys", "used_cpu_user"))
    assert Queue("scale", connection=redis.client).count == 0
    return cpu / n * 1000, n / took


def timed(command, args: list[str], env: dict, runs: int = 5) -> float:
    """Median seconds of a CLI command, run in this process: what the command
    costs, without the interpreter's start-up (printed apart)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = CliRunner().invoke(command, args, env=env)
        times.append(time.perf_counter() - start)
        assert done.exit_code in (0, 1), done.output
    return median(times)


def links_run(redis: PrivateRedis, n: int, work: Path) -> dict:
    redis.reset()
    links = work / "links.txt"
    with links.open("w") as out:
        for i in range(n):
            out.write(f"https://i.imgur.com/{i:07d}x.jpg\n")  # an Imgur image link's length
    env = {**os.environ, "DOWNLOADER_REDIS_URL": redis.url, "JOBQUEUE_REDIS_URL": redis.url, "PYTHONPATH": str(ROOT)}
    before = redis.client.info("memory")["used_memory"]
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "downloader", "fetch", "--links",
                           str(links), "--no-wait", "--quiet", "--dir", str(work / "dl")],
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    used = redis.client.info("memory")["used_memory"] - before
    run_id = redis.client.zrange("downloader:runs", -1, -1)[0].decode()
    return {
        "links/s": n / wall, "rss": int(done.stderr.strip().splitlines()[-1]) / 1024, "bytes": used / n,
        "status": timed(downloader_cli, ["status", run_id], env), "info": timed(jobqueue_cli, ["info"], env),
        "python": _startup(),
    }


def end_to_end(redis: PrivateRedis, n: int, work: Path) -> dict:
    """A run of ``n`` links (1,000 files of 2 KiB from nginx, each under many
    query strings: ``n`` distinct URLs and files), downloaded by the two
    workers ``fetch --workers 2`` starts, into /dev/shm when there is one."""
    from bench.download import Server
    redis.reset()
    server = Server(1000, 2048, 0.0, prefer_nginx=True)
    target = Path(tempfile.mkdtemp(prefix="scale-dl-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    peaks: dict[int, float] = {}
    redis_peak = [0.0]
    try:
        assert server.kind == "nginx", "--end-to-end needs nginx"
        links = work / "e2e.txt"
        with links.open("w") as out:
            for i in range(n):
                out.write(f"{server.url}/f/{i % 1000}.png?n={i}\n")
        env = {**os.environ, "DOWNLOADER_REDIS_URL": redis.url, "JOBQUEUE_REDIS_URL": redis.url, "PYTHONPATH": str(ROOT)}
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "downloader", "fetch", "--links", str(links), "--workers", "2",
                                 "--per-host", "128", "--quiet", "--dir", str(target)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        done = threading.Event()

        def watch() -> None:  # the producer and its workers' peak RSS, Redis's peak memory
            while not done.wait(0.5):
                for pid in [proc.pid, *_children(proc.pid)]:
                    value = peak_rss_mb(pid)
                    if value == value:
                        peaks[pid] = max(peaks.get(pid, 0.0), value)
                redis_peak[0] = max(redis_peak[0], redis.client.info("memory")["used_memory"] / 2**20)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _, err = proc.communicate()
        wall = time.perf_counter() - start
        done.set()
        watcher.join()
        assert proc.returncode == 0, err
        run_id = redis.client.zrange("downloader:runs", -1, -1)[0].decode()
        failed = redis.client.scard(f"downloader:run:{run_id}:failed")
        files = sum(1 for _ in os.scandir(target))
        workers = [v for pid, v in peaks.items() if pid != proc.pid]
        return {"wall": wall, "rate": n / wall, "files": files, "failed": failed, "producer": peaks.get(proc.pid, 0.0),
                "worker": max(workers, default=0.0), "redis": redis_peak[0]}
    finally:
        server.close()
        shutil.rmtree(target, ignore_errors=True)


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for t in os.listdir(f"/proc/{pid}/task")
                for c in Path(f"/proc/{pid}/task/{t}/children").read_text().split()]
    except OSError:
        return []


def _startup() -> float:
    times = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import downloader.cli, jobqueue.cli"], check=True, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--noop", type=int, default=1_000_000, help="no-op jobs per system")
    parser.add_argument("--dramatiq", type=int, default=200_000, help="Dramatiq's (it enqueues one at a time)")
    parser.add_argument("--links", default="1000000", help="links files to enqueue, comma-separated sizes")
    parser.add_argument("--load", type=int, default=100_000, help="no-op jobs run to measure Redis CPU per job")
    parser.add_argument("--end-to-end", type=int, default=0, metavar="N",
                        help="also download a run of N links from a local nginx (needs nginx) [0: skip]")
    args = parser.parse_args()
    redis = PrivateRedis()
    work = Path(tempfile.mkdtemp(prefix="scale-"))
    try:
        print(f"Redis {redis.version}\n")
        print("| no-op jobs waiting | Redis bytes per job | enqueued per s |")
        print("|---|---:|---:|")
        for label, make, n in (("jobqueue", jobqueue_noop, args.noop), ("RQ", rq_noop, args.noop),
                               ("Dramatiq", dramatiq_noop, args.dramatiq)):
            if n:
                size, rate = per_job(redis, make(redis), n)
                print(f"| {label}, {n:,} | {size:,.0f} | {rate:,.0f} |", flush=True)
        if args.load:
            cpu, rate = under_load(redis, args.load)
            print(f"\nUnder load (2 workers x 8 slots, {args.load:,} no-op jobs): {cpu:.3f} ms of Redis CPU per job, "
                  f"{rate:,.0f} jobs/s", flush=True)
        print("\n| links (`fetch --links`, --no-wait) | links/s | producer peak RSS MB | Redis bytes per waiting "
              "download | `status` ms | `jobqueue info` ms | Python start-up ms (apart) |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for n in (int(x) for x in args.links.split(",") if int(x)):
            f = links_run(redis, n, work)
            print(f"| {n:,} | {f['links/s']:,.0f} | {f['rss']:.0f} | {f['bytes']:,.0f} | {f['status'] * 1000:.0f} | "
                  f"{f['info'] * 1000:.0f} | {f['python'] * 1000:.0f} |", flush=True)
        if args.end_to_end:
            f = end_to_end(redis, args.end_to_end, work)
            print("\n| links downloaded (`fetch --links --workers 2`, 2 KiB files from nginx, to memory) | wall s "
                  "| files/s | files on disk | failed | producer peak RSS MB | worker peak RSS MB | Redis peak MB |")
            print("|---:|---:|---:|---:|---:|---:|---:|---:|")
            print(f"| {args.end_to_end:,} | {f['wall']:.0f} | {f['rate']:,.0f} | {f['files']:,} | {f['failed']:,} | "
                  f"{f['producer']:.0f} | {f['worker']:.0f} | {f['redis']:.0f} |", flush=True)
    finally:
        redis.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
