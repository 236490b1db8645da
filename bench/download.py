"""Downloads: the same files fetched by (a) the tutorial's sequential loop,
(b) the tutorial's RQ pipeline (two `rq worker --burst`), (c) downloader with
two worker processes, (d) `aria2c -j 16` when installed; first from a fast
local server (nginx when installed, else a threaded Python one), then from one
adding latency to every request.

    .venv/bin/python bench/download.py --runs 3

Wall time runs from the first enqueue (or the start of the command) to the
last file on disk. Peak RSS is the largest worker's VmHWM. A benchmark, not a test.
``--target /dev/shm`` writes the files to memory: on a VM whose disk is slow
or shared, writeback and discards otherwise drift from run to run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, PrivateRedis, median, peak_rss_mb, python, spawn  # noqa: E402
from bench.file_server import body  # noqa: E402


class Server:
    """nginx (fast scenario, when installed) or bench/file_server.py."""

    def __init__(self, files: int, size: int, latency: float, prefer_nginx: bool) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="bench-www-"))
        self.kind = "python"
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
            (self.root / "f" / f"{i}.png").write_bytes(body(size))
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
                requests.get(self.url + "/f/0.png", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.02)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


TARGET: str | None = None  # --target: where every system writes its files


def fresh_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="bench-dl-", dir=TARGET))


def urls_file(urls: list[str]) -> str:
    path = Path(tempfile.mkdtemp(prefix="bench-urls-")) / "urls.txt"
    path.write_text("\n".join(urls) + "\n")
    return str(path)


def count_files(directory: Path) -> int:
    return sum(1 for p in directory.iterdir() if not p.name.endswith(".part") and not p.name.startswith("."))


def track_rss(pids: list[int], peaks: dict[int, float]) -> None:
    for pid in pids:
        value = peak_rss_mb(pid)
        if value == value:  # not NaN
            peaks[pid] = max(peaks.get(pid, 0.0), value)


def run_sequential(urls: list[str], server: Server, redis: PrivateRedis) -> tuple[float, float | None]:
    directory = fresh_dir()
    start = time.perf_counter()
    subprocess.run(python("-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                                f"from bench.tutorial_download import sequential; "
                                f"sequential({str(directory)!r}, open({urls_file(urls)!r}).read().split())"),
                   check=True)
    wall = time.perf_counter() - start
    assert count_files(directory) == len(urls), "sequential loop missed files"
    shutil.rmtree(directory)
    return wall, None


def run_rq(urls: list[str], server: Server, redis: PrivateRedis) -> tuple[float, float | None]:
    import rq
    redis.reset()
    directory = fresh_dir()
    queue = rq.Queue(connection=redis.client)
    start = time.perf_counter()
    for url in urls:
        queue.enqueue("bench.tutorial_download.download_link", str(directory), url)
    workers = [spawn(python("-m", "rq.cli", "worker", "--burst", "--quiet", "--url", redis.url)) for _ in range(2)]
    peaks: dict[int, float] = {}
    while any(w.poll() is None for w in workers):
        track_rss([w.pid for w in workers], peaks)
        time.sleep(0.05)
    wall = time.perf_counter() - start
    assert count_files(directory) == len(urls), "RQ pipeline missed files"
    shutil.rmtree(directory)
    return wall, max(peaks.values(), default=None)


def run_downloader(urls: list[str], server: Server, redis: PrivateRedis) -> tuple[float, float | None]:
    from downloader.config import Settings
    from downloader.runs import Runs
    from jobqueue import Worker
    redis.reset()
    directory = fresh_dir()
    env = {"DOWNLOADER_REDIS_URL": redis.url}
    workers = [spawn(python("-m", "downloader", "work", "--quiet", "--dir", str(directory)), env=env)
               for _ in range(2)]
    while Worker.count(connection=redis.client) < 2:
        time.sleep(0.02)
    runs = Runs(redis.client)
    peaks: dict[int, float] = {}
    start = time.perf_counter()
    run_id, _ = runs.create(urls, "bench", Settings(dir=str(directory)))
    while not runs.progress(run_id).complete:
        track_rss([w.pid for w in workers], peaks)
        time.sleep(0.01)
    wall = time.perf_counter() - start
    track_rss([w.pid for w in workers], peaks)
    for w in workers:
        w.send_signal(signal.SIGTERM)
    for w in workers:
        w.wait()
    progress = runs.progress(run_id)
    assert progress.done == len(urls) and count_files(directory) == len(urls), f"downloader: {progress}"
    shutil.rmtree(directory)
    return wall, max(peaks.values(), default=None)


def run_aria2(urls: list[str], server: Server, redis: PrivateRedis) -> tuple[float, float | None]:
    directory = fresh_dir()
    start = time.perf_counter()
    proc = subprocess.Popen(["aria2c", "-i", urls_file(urls), "-j", "16", "-d", str(directory),
                             "-q", "--file-allocation=none"])
    peaks: dict[int, float] = {}
    while proc.poll() is None:
        track_rss([proc.pid], peaks)
        time.sleep(0.02)
    wall = time.perf_counter() - start
    assert count_files(directory) == len(urls), "aria2c missed files"
    shutil.rmtree(directory)
    return wall, max(peaks.values(), default=None)


SYSTEMS = [("(a) sequential loop, one requests.Session", run_sequential, "files"),
           ("(b) tutorial RQ pipeline, 2 x rq worker --burst", run_rq, "rq_files"),
           ("(c) downloader, 2 workers x 16 downloads", run_downloader, "files"),
           ("(d) aria2c -j 16", run_aria2, "files")]


def scenario(title: str, files: int, rq_files: int, size: int, latency: float, runs: int, redis: PrivateRedis,
             prefer_nginx: bool, only: list[str]) -> str:
    server = Server(files, size, latency, prefer_nginx)
    results: dict[str, dict] = {}
    try:
        for label, func, count_key in SYSTEMS:
            if func is run_aria2 and not shutil.which("aria2c"):
                continue
            if only and not any(word in label for word in only):
                continue
            n = files if count_key == "files" else min(rq_files, files)
            walls, rss = [], []
            for run in range(runs):
                print(f"{title}: {label}, {n} files, run {run + 1}/{runs}...", file=sys.stderr, flush=True)
                os.sync()  # every run starts with no writeback of the last one's files pending
                wall, peak = func(server.urls[:n], server, redis)
                print(f"    {wall:.2f} s, {n / wall:.0f} files/s", file=sys.stderr, flush=True)
                walls.append(wall)
                if peak:
                    rss.append(peak)
            results[label] = {"n": n, "wall": median(walls), "rss": median(rss) if rss else None}
    finally:
        server.close()
    ours = results.get("(c) downloader, 2 workers x 16 downloads")
    our_rate = ours["n"] / ours["wall"] if ours else None
    lines = [f"### {title}: {files} files of {size // 1024} KiB from {server.kind}", "",
             "| system | files | wall s | files/s | MB/s | peak worker RSS MB | downloader is |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for label, r in results.items():
        rate = r["n"] / r["wall"]
        ratio = "-" if r is ours or not our_rate else f"{our_rate / rate:.1f}x faster"
        rss = f"{r['rss']:.0f}" if r["rss"] else "n/a"
        lines.append(f"| {label} | {r['n']} | {r['wall']:.2f} | {rate:.0f} | {rate * size / 2**20:.1f} | {rss} | {ratio} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rq-files", type=int, default=500, help="files for the (slow) RQ pipeline [500]")
    parser.add_argument("--slow-files", type=int, default=300)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--only", help="comma-separated substrings of system labels to run, e.g. downloader,aria2c")
    parser.add_argument("--no-slow", action="store_true", help="skip the slow-server scenario")
    parser.add_argument("--target", metavar="DIR",
                        help="where the downloaded files go, for every system (default: the temp dir); "
                             "/dev/shm takes the disk out of the comparison")
    parser.add_argument("--no-nginx", action="store_true", help="use the Python server even if nginx is installed")
    args = parser.parse_args()
    global TARGET
    TARGET = args.target
    only = [w.strip() for w in args.only.split(",")] if args.only else []
    redis = PrivateRedis()
    try:
        fast = scenario("Fast server", args.files, args.rq_files, 65536, 0.0, args.runs, redis, not args.no_nginx,
                        only)
        slow = "" if args.no_slow else scenario("Slow server", args.slow_files, args.slow_files, 65536, args.latency,
                                                   args.runs, redis, False, only)
    finally:
        redis.close()
    where = args.target or tempfile.gettempdir()
    print(f"Medians of {args.runs} run(s); ratios compare files/s; files written under {where}.\n\n{fast}\n\n{slow}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
