"""The floor under a download worker: a bare pycurl loop in one thread, with
no job queue, fetching N files of 64 KiB from nginx into /dev/shm as a
worker does (64 at once, the multi socket API on epoll, the engine's
options, the header lines handed to a list, a Python write callback per
chunk, a part file created with O_EXCL and renamed into place). What a
worker spends per file above this is its own Python: the job, the checks,
the bookkeeping.

    .venv/bin/python bench/floor.py --files 20000 --rounds 3

A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import resource
import selectors
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pycurl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.download import Server  # noqa: E402
from downloader.transfer.engine import curl_flags, follow_socket  # noqa: E402  (the engine's own socket plumbing)

CONCURRENCY = 64


class Part:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, data: bytes) -> None:
        done = os.write(self.fd, data)
        while done < len(data):
            done += os.write(self.fd, data[done:])


def one_round(urls: list[str]) -> tuple[float, float]:
    """(files/s, CPU ms per file) of one pass over ``urls``."""
    target = tempfile.mkdtemp(dir="/dev/shm")
    folder = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    multi, selector, timer = pycurl.CurlMulti(), selectors.DefaultSelector(), [None]

    def on_timer(ms: int) -> None:
        timer[0] = None if ms < 0 else time.monotonic() + ms / 1000

    def act(fd: int, flags: int) -> None:
        while multi.socket_action(fd, flags)[0] == pycurl.E_CALL_MULTI_PERFORM:
            pass

    multi.setopt(pycurl.M_SOCKETFUNCTION, lambda what, fd, _multi, _data: follow_socket(selector, what, fd))
    multi.setopt(pycurl.M_TIMERFUNCTION, on_timer)
    spare, active, todo, done = [pycurl.Curl() for _ in range(CONCURRENCY)], {}, iter(enumerate(urls)), 0

    def start() -> None:
        item = next(todo, None)
        if item is not None:
            n, url = item
            curl, fd = spare.pop(), os.open(f"{n}.part", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=folder)
            for option, value in ((pycurl.URL, url), (pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS),
                                  (pycurl.FOLLOWLOCATION, 0), (pycurl.PROXY, ""), (pycurl.NOSIGNAL, 1),
                                  (pycurl.CONNECTTIMEOUT_MS, 5000), (pycurl.HTTPHEADER, ["User-Agent: floor"]),
                                  (pycurl.HEADERFUNCTION, [].append), (pycurl.WRITEFUNCTION, Part(fd).write),
                                  (pycurl.BUFFERSIZE, 256 * 1024)):
                curl.setopt(option, value)
            active[curl] = (n, fd)
            multi.add_handle(curl)

    began, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(CONCURRENCY):
        start()
    act(pycurl.SOCKET_TIMEOUT, 0)
    while active:
        wait = None if timer[0] is None else max(0.0, timer[0] - time.monotonic())
        for key, mask in selector.select(wait):
            act(key.fd, curl_flags(mask))
        if timer[0] is not None and time.monotonic() >= timer[0]:
            timer[0] = None
            act(pycurl.SOCKET_TIMEOUT, 0)
        while True:
            queued, ok, failed = multi.info_read()
            for curl in ok + [f[0] for f in failed]:
                n, fd = active.pop(curl)
                multi.remove_handle(curl)
                os.close(fd)
                os.rename(f"{n}.part", f"{n}.png", src_dir_fd=folder, dst_dir_fd=folder)
                curl.reset()
                spare.append(curl)
                done += 1
                start()
            if not queued:
                break
    wall, after = time.perf_counter() - began, resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    complete = sum(1 for e in os.scandir(target) if e.name.endswith(".png") and e.stat().st_size == 64 << 10)
    for name in os.listdir(target):
        os.unlink(os.path.join(target, name))
    os.rmdir(target)
    os.close(folder)
    if complete != len(urls):
        raise SystemExit(f"only {complete} of {len(urls)} files arrived whole")
    return done / wall, cpu * 1000 / done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server = Server(2000, 64 << 10, 0.0, prefer_nginx=True)
    try:
        urls = [f"{u}?r={k}" for k in range(args.files // len(server.urls) + 1) for u in server.urls][:args.files]
        got = []
        for _ in range(args.rounds):
            got.append(one_round(urls))
            print(f"  {got[-1][0]:,.0f} files/s, {got[-1][1]:.3f} ms CPU per file", flush=True)
        print(f"bare pycurl loop, one thread, {args.files} files from {server.kind}: median "
              f"{statistics.median(g[0] for g in got):,.0f} files/s, {statistics.median(g[1] for g in got):.3f} ms "
              f"CPU per file")
    finally:
        server.close()


if __name__ == "__main__":
    main()
