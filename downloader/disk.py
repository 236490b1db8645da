"""Where this machine writes downloads, and whether the disk takes bytes.

A directory that refused bytes (full, over quota, read-only, not ours) is
noted here by the download that met the refusal; the worker then takes no
more downloads (``hold``, its jobqueue hold) until a probe write succeeds,
instead of failing every queued download on it. One directory may be all
the runs' (a worker writes every run into its own ``--dir``), so the hold is
the whole worker's."""

from __future__ import annotations

import logging
import os
import threading
import time

log = logging.getLogger("downloader.disk")
WORKER_DIR: str | None = None  # `downloader work --dir`: this machine's path to the shared directory
PROBE_EVERY = 2.0              # seconds between probe writes into a refusing directory
_refused: dict[str, tuple[str, float]] = {}  # directory -> (cause, when last probed)
_lock = threading.Lock()


def directory_for(run_directory: str) -> str:
    return WORKER_DIR or run_directory


def refused(directory: str, cause: str) -> None:
    with _lock:
        if directory not in _refused:
            log.warning("%s refuses bytes (%s): taking no more downloads until it takes bytes again", directory, cause)
        _refused[directory] = (cause, time.monotonic())


def hold() -> str | None:
    """Why the worker should take no job now, or None (probes at most every PROBE_EVERY s)."""
    with _lock:
        now = time.monotonic()
        for directory, (cause, probed) in list(_refused.items()):
            if now - probed < PROBE_EVERY:
                return f"{directory} refuses bytes ({cause})"
            problem = _probe(directory)
            if problem:
                _refused[directory] = (problem, now)
                return f"{directory} refuses bytes ({problem})"
            del _refused[directory]
            log.warning("%s takes bytes again: taking downloads", directory)
        return None


def _probe(directory: str) -> str | None:
    """Write 64 KiB and remove it: a full disk may still create an empty file."""
    path = os.path.join(directory, f".downloader-probe-{os.getpid()}")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, bytes(65536))
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(path)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None
