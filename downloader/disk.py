"""Where this machine writes a run's downloads, and whether the disk takes bytes.

A run owns its directory: the producer records it as an absolute path, or,
when a shared root is configured (``--root``, ``DOWNLOADER_ROOT``), as a path
under that root (``root:photos/cats``), which each worker maps onto its own
mount of the share (its own ``--root``). A worker never writes a run's files
anywhere else.

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

from jobqueue.backend import storable

from .exceptions import ConfigError, Unreachable

log = logging.getLogger("downloader.disk")
WORKER_ROOT: str | None = None  # `downloader work --root`: this machine's mount of the shared root
ROOT_MARK = "root:"             # a run directory under the shared root
PROBE_EVERY = 2.0              # seconds between probe writes into a refusing directory
_refused: dict[str, tuple[str, float]] = {}  # directory -> (cause, when last probed)
_lock = threading.Lock()


def directory_for(run_directory: str) -> str:
    """This machine's path to a run's directory."""
    if not run_directory.startswith(ROOT_MARK):
        return run_directory
    if not WORKER_ROOT:
        raise Unreachable(f"the run's files go under the shared root ({run_directory[len(ROOT_MARK):]}), and this "
                          "worker has none: start it with --root (DOWNLOADER_ROOT) naming its mount of the share")
    return os.path.join(WORKER_ROOT, run_directory[len(ROOT_MARK):])


def placement(directory: str, root: str) -> tuple[str, str]:
    """(the directory as the producer sees it, what the run's jobs carry); made
    here, by the producer, so a worker that cannot see it knows it cannot."""
    absolute = os.path.abspath(directory)
    if storable(absolute) != absolute:  # every worker reads the run's directory from Redis, as text
        raise ConfigError(f"--dir {storable(absolute)}: the name is not UTF-8, and a run's directory is stored as text "
                          "for every worker to read; rename it, or choose another directory")
    carried = absolute
    if root:
        relative = os.path.relpath(absolute, os.path.abspath(root))
        if relative == ".." or relative.startswith("../"):
            raise ConfigError(f"--dir {absolute} is not under the shared root {os.path.abspath(root)} (--root)")
        carried = ROOT_MARK + relative
    if os.path.exists(absolute) and not os.path.isdir(absolute):
        raise ConfigError(f"--dir {absolute} is not a directory; give the download directory")
    try:
        os.makedirs(absolute, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot make the download directory {absolute}: {exc.strerror}") from None
    return absolute, carried


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
