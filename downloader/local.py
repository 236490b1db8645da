"""Workers a command starts on this machine (`fetch`/`retry --workers N`).

Their output is read by the command, which prints it above its progress bar
(never through it), and their exit is watched: if they all end before the run
does, the command stops with their last lines rather than wait for nothing.
They are stopped (warm shutdown) when the run completes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import deque
from queue import Empty, SimpleQueue

from .config import Settings

LAST_LINES = 5


class LocalWorkers:
    def __init__(self, count: int, settings: Settings, redis_url: str) -> None:
        """The Redis URL, with its password, goes by environment, not argv."""
        env = {**os.environ, "DOWNLOADER_REDIS_URL": redis_url, "DOWNLOADER_SHARDS": str(settings.shards),
               "PYTHONUNBUFFERED": "1"}
        args = [sys.executable, "-m", "downloader", "work", "--quiet", "--dir", settings.dir,
                "--queue", settings.queue, "--concurrency", str(settings.concurrency),
                *(["--root", settings.root] if settings.root else [])]
        self.procs = [subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True, errors="replace")
                      for _ in range(count)]
        self._lines: SimpleQueue = SimpleQueue()
        self.last = [deque(maxlen=LAST_LINES) for _ in self.procs]
        self._readers = [threading.Thread(target=self._read, args=(i, p), daemon=True) for i, p in enumerate(self.procs)]
        for reader in self._readers:
            reader.start()

    def _read(self, index: int, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            line = line.rstrip("\n")
            self.last[index].append(line)
            self._lines.put(f"[worker {index + 1}] {line}" if len(self.procs) > 1 else f"[worker] {line}")

    def lines(self) -> list[str]:
        """What the workers printed since the last call."""
        out = []
        while True:
            try:
                out.append(self._lines.get_nowait())
            except Empty:
                return out

    def all_gone(self) -> bool:
        return bool(self.procs) and all(p.poll() is not None for p in self.procs)

    def why_gone(self) -> str:
        """Their exit codes and last lines, for the command's error message."""
        for reader in self._readers:
            reader.join(timeout=2)
        parts = []
        for i, proc in enumerate(self.procs):
            tail = "\n".join(f"    {line}" for line in self.last[i]) or "    (no output)"
            parts.append(f"  worker {i + 1} exited with code {proc.returncode}:\n{tail}")
        return "\n".join(parts)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()  # warm shutdown: a download in hand finishes
        for proc in self.procs:
            proc.wait()
