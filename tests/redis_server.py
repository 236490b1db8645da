"""A real redis-server for tests: on a free loopback port, in a temp dir,
with AOF so restarts keep data. Never port 6379, never a fake."""

from __future__ import annotations

import re
import subprocess
import time
from functools import lru_cache
from pathlib import Path

import redis

from jobqueue.embedded import find_redis_server, free_port


class RedisServer:
    def __init__(self, directory: Path, port: int | None = None, password: str | None = None,
                 fsync: str = "everysec", extra: tuple[str, ...] = ()) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.password = password
        self.fsync = fsync  # "always": every write is in the AOF before its reply (tests that kill Redis)
        self.extra = list(extra)  # more redis-server options, e.g. ("--key-load-delay", "10")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def start(self, wait: bool = True) -> "RedisServer":
        """Start; with ``wait`` return once it answers (after loading its data)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                "--appendonly", "yes", "--appendfsync", self.fsync, "--save", "", "--logfile", "redis.log"]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args + version_options() + self.extra, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        if not wait:
            return self
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client().ping()
                return self
            except redis.exceptions.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start; see {self.directory}/redis.log")
                time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: what a crash or a power cut does (AOF keeps all but ~1 s)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@lru_cache(maxsize=1)
def version_options() -> list[str]:
    """Redis 7 refuses DEBUG unless told (the tests put Redis to sleep with
    DEBUG SLEEP); 6.2, the embedded one, has no such option and would not start with it."""
    out = subprocess.run([find_redis_server(), "--version"], capture_output=True, text=True).stdout
    found = re.search(r"v=(\d+)\.", out)
    return ["--enable-debug-command", "yes"] if found and int(found.group(1)) >= 7 else []
