"""Downloads: the same files fetched by (a) the tutorial's sequential loop,
(b) the tutorial's RQ pipeline (two `rq worker --burst`), (c) downloader with
two worker processes, (d) `aria2c -j 16` and (e) `curl --parallel
--parallel-max 16` when installed, in four scenarios:

    fast   2,000 files of 64 KiB from nginx (or a threaded Python server)
    slow   2,000 files of 64 KiB, +50 ms per request (Python server)
    big    one 1 GiB file from nginx: downloader (1 worker) against `curl -o`
    large  20 files of 50 MiB from nginx: downloader (2 workers) against aria2c and curl

    .venv/bin/python bench/download.py --runs 5 --target /dev/shm --scenarios fast,slow

Wall time runs from the first enqueue (or the start of the command) to the
last file on disk. Peak RSS is the largest worker's VmHWM. CPU is user + sys
of the system's own processes (servers and Redis excluded), per file. A
benchmark, not a test. ``--target /dev/shm`` writes the files to memory: on a
VM whose disk is slow or shared, writeback and discards otherwise drift.
"""

from __future__ import annotations

import argparse
import atexit
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, PrivateRedis, median, peak_rss_mb, python, spawn  # noqa: E402
from bench.file_server import body  # noqa: E402

TARGET: str | None = None  # --target: where every system writes its files
CONCURRENCY: int | None = None  # --concurrency: downloads per downloader worker (None: the product's default)
PER_HOST = 128  # --per-host: the fleet's limit on the benchmark's one host (two workers x 64 downloads fit)


class Server:
    """nginx (when installed and no latency is wanted) or bench/file_server.py."""

    def __init__(self, files: int, size: int, latency: float, prefer_nginx: bool) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="bench-www-"))
        if prefer_nginx and not latency and shutil.which("nginx"):
            self._nginx(files, size)
        else:
            self.proc = subprocess.Popen(python("bench/file_server.py", "--size", str(size), "--latency", str(latency)),
                                         cwd=ROOT, stdout=subprocess.PIPE, text=True)
            self.url = self.proc.stdout.readline().strip()
            self.kind = f"threaded Python server{f', +{latency * 1000:.0f} ms per request' if latency else ''}"
        self.urls = [f"{self.url}/f/{i}.png" for i in range(files)]

    def _nginx(self, files: int, size: int) -> None:
        from jobqueue.embedded import free_port
        self.root.chmod(0o755)  # nginx's workers run as nobody
        (self.root / "f").mkdir()
        for i in range(files):
            with open(self.root / "f" / f"{i}.png", "wb") as f:
                f.write(body(min(size, 1 << 20)))
                f.truncate(size)  # big files: random head, sparse tail
        port = free_port()
        conf = self.root / "nginx.conf"
        conf.write_text(f"""
worker_processes 1; pid {self.root}/nginx.pid; error_log {self.root}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off; sendfile on; keepalive_requests 100000;
  client_body_temp_path {self.root}/tmp; proxy_temp_path {self.root}/tmp; fastcgi_temp_path {self.root}/tmp;
  uwsgi_temp_path {self.root}/tmp; scgi_temp_path {self.root}/tmp;
  types {{ image/png png; }}
  server {{ listen 127.0.0.1:{port}; root {self.root}; }}
}}""")
        self.proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(self.root), "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{port}"
        self.kind = "nginx"
        import requests
        for _ in range(200):
            try:
                requests.head(self.url + "/f/0.png", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.02)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Run:
    wall: float
    rss: float | None
    cpu: float  # seconds, user + sys of the system's processes


def fresh_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="bench-dl-", dir=TARGET))


def urls_file(urls: list[str]) -> str:
    """A file of the URLs, one per line (removed when the benchmark ends)."""
    folder = tempfile.mkdtemp(prefix="bench-urls-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = Path(folder) / "urls.txt"
    path.write_text("\n".join(urls) + "\n")
    return str(path)


def count_files(directory: Path) -> int:
    return sum(1 for p in directory.iterdir() if not p.name.endswith((".part", ".meta")) and not p.name.startswith("."))


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def watch(procs: list[subprocess.Popen], until=None) -> float | None:
    """Wait for the processes to end (or ``until()``), noting their peak RSS."""
    peaks: dict[int, float] = {}
    while (until is None and any(p.poll() is None for p in procs)) or (until is not None and not until()):
        for p in procs:
            value = peak_rss_mb(p.pid)
            if value == value:  # not NaN
                peaks[p.pid] = max(peaks.get(p.pid, 0.0), value)
        time.sleep(0.01)
    return max(peaks.values(), default=None)


def run_sequential(urls: list[str], redis: PrivateRedis, workers: int) -> Run:
    directory, cpu, start = fresh_dir(), children_cpu(), time.perf_counter()
    subprocess.run(python("-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                                f"from bench.tutorial_download import sequential; "
                                f"sequential({str(directory)!r}, open({urls_file(urls)!r}).read().split())"),
                   check=True)
    wall = time.perf_counter() - start
    assert count_files(directory) == len(urls), "sequential loop missed files"
    shutil.rmtree(directory)
    return Run(wall, None, children_cpu() - cpu)


def run_rq(urls: list[str], redis: PrivateRedis, workers: int) -> Run:
    import rq
    redis.reset()
    directory, cpu = fresh_dir(), children_cpu()
    queue = rq.Queue(connection=redis.client)
    start = time.perf_counter()
    for url in urls:
        queue.enqueue("bench.tutorial_download.download_link", str(directory), url)
    procs = [spawn(python("-m", "rq.cli", "worker", "--burst", "--quiet", "--url", redis.url)) for _ in range(workers)]
    rss = watch(procs)
    wall = time.perf_counter() - start
    assert count_files(directory) == len(urls), "RQ pipeline missed files"
    shutil.rmtree(directory)
    return Run(wall, rss, children_cpu() - cpu)


def run_downloader(urls: list[str], redis: PrivateRedis, workers: int, limiter: bool = True) -> Run:
    from downloader import politeness
    from downloader.config import Settings
    from downloader.runs import Runs
    from jobqueue import Worker
    redis.reset()
    directory, cpu = fresh_dir(), children_cpu()
    env = {"DOWNLOADER_REDIS_URL": redis.url, **({} if limiter else {"DOWNLOADER_PER_HOST": "0"})}
    politeness.register(redis.client, {politeness.host_of(urls[0]): (PER_HOST, 0.0)})
    flags = ["-c", str(CONCURRENCY)] if CONCURRENCY else []
    procs = [spawn(python("-m", "downloader", "work", "--quiet", *flags, "--dir", str(directory)), env=env)
             for _ in range(workers)]
    while Worker.count(connection=redis.client) < workers:
        time.sleep(0.02)
    runs = Runs(redis.client)
    start = time.perf_counter()
    run_id, _ = runs.create(urls, "bench", Settings(dir=str(directory), max_size=4 << 30, job_timeout=3600))
    rss = watch(procs, until=lambda: runs.progress(run_id).complete)
    wall = time.perf_counter() - start
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait()
    progress = runs.progress(run_id)
    assert progress.done == len(urls) and count_files(directory) == len(urls), f"downloader: {progress}"
    shutil.rmtree(directory)
    return Run(wall, rss, children_cpu() - cpu)


def run_downloader_unlimited(urls: list[str], redis: PrivateRedis, workers: int) -> Run:
    return run_downloader(urls, redis, workers, limiter=False)


def _command(args: list[str], directory: Path, expected: int) -> Run:
    cpu, start = children_cpu(), time.perf_counter()
    proc = subprocess.Popen(args, cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rss = watch([proc])
    wall = time.perf_counter() - start
    assert proc.returncode == 0 and count_files(directory) == expected, f"{args[0]} failed"
    shutil.rmtree(directory)
    return Run(wall, rss, children_cpu() - cpu)


def run_aria2(urls: list[str], redis: PrivateRedis, workers: int) -> Run:
    directory = fresh_dir()
    return _command(["aria2c", "-i", urls_file(urls), "-j", "16", "-d", str(directory), "-q",
                     "--file-allocation=none"], directory, len(urls))


def run_curl(urls: list[str], redis: PrivateRedis, workers: int) -> Run:
    directory = fresh_dir()
    if len(urls) == 1:
        return _command(["curl", "-sS", "-f", "-o", "out.png", urls[0]], directory, 1)
    return _command(["curl", "-sS", "-f", "--parallel", "--parallel-max", "16", "--remote-name-all", *urls],
                    directory, len(urls))


def label(key: str, workers: int) -> str:
    per = CONCURRENCY or _default_concurrency()
    return {"a": "(a) sequential loop, one requests.Session",
            "b": f"(b) tutorial RQ pipeline, {workers} x rq worker --burst",
            "c": f"(c) downloader, {workers} worker(s) x {per} downloads, per host {PER_HOST}",
            "f": "(f) downloader as (c), per-host limiter off",
            "d": "(d) aria2c -j 16",
            "e": "(e) curl -o" if workers == 1 else "(e) curl --parallel --parallel-max 16"}[key]


def _default_concurrency() -> int:
    from downloader.config import Settings
    return Settings().concurrency


SYSTEMS = {"a": run_sequential, "b": run_rq, "c": run_downloader, "d": run_aria2, "e": run_curl,
           "f": run_downloader_unlimited}
SCENARIOS = {  # name: (title, files, size, latency, systems with their file counts (None: all), workers)
    "fast": ("Fast server", 2000, 64 << 10, 0.0, {"a": None, "b": 500, "c": None, "d": None, "e": None, "f": None}, 2),
    "slow": ("Slow server", 2000, 64 << 10, 0.05, {"a": 300, "b": 300, "c": None, "d": None, "e": None, "f": None},
             2),
    "big": ("One big file", 1, 1 << 30, 0.0, {"c": None, "e": None}, 1),
    "large": ("Large files", 20, 50 << 20, 0.0, {"c": None, "d": None, "e": None}, 2),
}


def scenario(name: str, runs: int, redis: PrivateRedis, prefer_nginx: bool, only: list[str]) -> str:
    title, files, size, latency, systems, workers = SCENARIOS[name]
    server = Server(files, size, latency, prefer_nginx)
    chosen = [key for key in systems
              if not (key in "de" and not shutil.which({"d": "aria2c", "e": "curl"}[key]))
              and not (only and not any(word in label(key, workers) for word in only))]
    measured: dict[str, list[Run]] = {key: [] for key in chosen}
    try:
        for run in range(runs):  # the systems take turns, so a VM that drifts over the hour drifts for all
            for key in chosen:
                n = systems[key] or files
                print(f"{title}: {label(key, workers)}, {n} files, run {run + 1}/{runs}...", file=sys.stderr, flush=True)
                os.sync()  # every run starts with no writeback of the last one's files pending
                result = SYSTEMS[key](server.urls[:n], redis, workers)
                print(f"    {result.wall:.2f} s, {n / result.wall:.1f} files/s, {result.cpu * 1000 / n:.2f} ms CPU/file",
                      file=sys.stderr, flush=True)
                measured[key].append(result)
    finally:
        server.close()
    results: dict[str, tuple[int, Run]] = {}
    for key, runs_of in measured.items():
        rss = [m.rss for m in runs_of if m.rss]
        results[key] = (systems[key] or files, Run(median([m.wall for m in runs_of]), median(rss) if rss else None,
                                                   median([m.cpu for m in runs_of])))
    ours = results.get("c")
    our_rate = ours[0] / ours[1].wall if ours else None
    size_text = f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"
    lines = [f"### {title}: {files} file(s) of {size_text} from {server.kind}", "",
             "| system | files | wall s | files/s | MB/s | CPU ms/file | peak RSS MB | downloader is |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for key, (n, r) in results.items():
        rate = n / r.wall
        ratio = "-" if key == "c" or not our_rate else f"{our_rate / rate:.2f}x"
        rss = f"{r.rss:.0f}" if r.rss else "n/a"
        lines.append(f"| {label(key, workers)} | {n} | {r.wall:.2f} | {rate:.1f} | {rate * size / 1e6:.1f} | "
                     f"{r.cpu * 1000 / n:.2f} | {rss} | {ratio} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scenarios", default="fast,slow", help="comma-separated: fast, slow, big, large [fast,slow]")
    parser.add_argument("--only", help="comma-separated substrings of system labels to run, e.g. downloader,aria2c")
    parser.add_argument("--concurrency", type=int, help="downloads per downloader worker [the product's default]")
    parser.add_argument("--target", metavar="DIR",
                        help="where the downloaded files go, for every system (default: the temp dir); "
                             "/dev/shm takes the disk out of the comparison")
    parser.add_argument("--no-nginx", action="store_true", help="use the Python server even if nginx is installed")
    parser.add_argument("--per-host", type=int, default=128, help="the downloader's per-host limit [128]")
    args = parser.parse_args()
    global TARGET, CONCURRENCY, PER_HOST
    TARGET, CONCURRENCY, PER_HOST = args.target, args.concurrency, args.per_host
    only = [w.strip() for w in args.only.split(",")] if args.only else []
    redis = PrivateRedis()
    try:
        tables = [scenario(name.strip(), args.runs, redis, not args.no_nginx, only)
                  for name in args.scenarios.split(",")]
    finally:
        redis.close()
    where = args.target or tempfile.gettempdir()
    print(f"Medians of {args.runs} run(s); ratios compare files/s; files written under {where}.\n")
    print("\n\n".join(tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
