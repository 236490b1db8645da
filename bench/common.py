"""Shared by the benchmarks: a private redis-server, command counting, medians."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from jobqueue.embedded import find_redis_server, free_port

ROOT = Path(__file__).resolve().parent.parent


class PrivateRedis:
    """One redis-server for a whole benchmark run, so every system meets the same one."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="bench-redis-")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = redis.Redis.from_url(self.url)
        for _ in range(500):
            try:
                self.client.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.01)
        server = self.client.info("server")
        allocator = self.client.info("memory").get("mem_allocator", "?")
        self.version = f"{server['redis_version']} ({allocator})"  # the allocator moves Redis's CPU per job

    def reset(self) -> None:
        self.client.flushall()
        self.client.config_resetstat()

    def commands(self) -> int:
        """Commands executed since the last reset, Lua-internal ones included,
        less the INFO that asks."""
        stats = self.client.info("commandstats")
        return sum(v["calls"] for v in stats.values()) - 1

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def spawn(args: list[str], env: dict | None = None, quiet: bool = True, cwd: str | None = None) -> subprocess.Popen:
    out = subprocess.DEVNULL if quiet else None
    return subprocess.Popen(args, cwd=cwd or ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                            stdout=out, stderr=out)


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def wait_until(condition, timeout: float, interval: float = 0.01) -> int:
    """Poll; returns how many polls it took (their commands are subtracted)."""
    deadline = time.monotonic() + timeout
    polls = 0
    while True:
        polls += 1
        if condition():
            return polls
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark step timed out")
        time.sleep(interval)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a live process, from /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")
