"""download_link: the job. Fetch one URL into the shared directory, safely.

- Streams into ``<name>.<job>.part`` and renames it into place only when
  complete, so no partial file ever stands under its final name, even after
  SIGKILL; the re-run of a killed job resumes its own part (HTTP Range) or
  restarts it.
- Idempotent: a complete file is skipped and counted as skipped.
- Each job writes its own part file, so two runs of one URL never share one;
  a name is derived from a hash of the URL, so two jobs that rename onto one
  name carry the same bytes; the rename is atomic. An attempt the worker's
  heartbeat has found superseded (its worker was paused past its deadline
  and came back) does not rename. Not yet kept: two attempts of one job
  share its part file while both run.
- Transient failures (reset, timeout, 429, 5xx) raise TransientDownloadError,
  which jobqueue retries (honouring Retry-After); permanent ones (404, 403,
  too large, not an image, malformed URL) raise PermanentDownloadError and
  fail at once. A name taken from a URL never leaves the directory (a symlink
  planted in the directory is still followed).
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import os
import ssl
import threading
import time
from pathlib import Path

from jobqueue import get_current_job
from jobqueue.exceptions import AttemptSuperseded

from . import http_get
from .exceptions import PermanentDownloadError, TransientDownloadError
from .naming import check_url, file_name
from .runs import Runs

WORKER_DIR: str | None = None  # `downloader work --dir`: this machine's path to the shared directory
CHUNK = 64 * 1024
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
_made: set[str] = set()  # directories this process has made (or found)
_buffers = threading.local()  # one read buffer per download thread


def download_link(directory: str, link: str, run: str | None = None, max_size: int = 50 * 2**20,
                  connect_timeout: float = 5.0, read_timeout: float = 30.0, check_image: bool = True,
                  user_agent: str = "downloader/0.1") -> dict:
    """Download ``link`` into ``directory``; returns what happened (as the job's result)."""
    link = check_url(link)
    folder = _folder(WORKER_DIR or directory)
    name = file_name(link)  # never a path: no separator, no leading dot
    final = folder / name
    job = get_current_job()
    runs = Runs.of(job.connection) if job is not None and run else None
    if final.exists():
        if runs:
            runs.mark(run, link, "skipped", job=job)
        return {"status": "skipped", "file": name, "bytes": final.stat().st_size}
    part = _part_path(folder, name, job.id if job is not None else None)
    nbytes = _fetch(link, part, final, max_size, (connect_timeout, read_timeout), check_image, user_agent,
                    (lambda: job.is_superseded(refresh=False)) if job is not None else None)
    if runs:
        runs.mark(run, link, "done", nbytes, job=job)
    return {"status": "done", "file": name, "bytes": nbytes}


def _part_path(folder: Path, name: str, job_id: str | None) -> Path:
    """This job's own part file: a re-run of the job resumes it, no other job touches it."""
    if job_id is None:
        return folder / f"{name}.part"
    return folder / f"{name}.{hashlib.sha1(job_id.encode()).hexdigest()[:10]}.part"


def discard_part(directory: str, link: str, job_id: str) -> None:
    """Once a download failed for good, its partial bytes go (a retry starts afresh)."""
    try:
        _part_path(Path(WORKER_DIR or directory), file_name(link), job_id).unlink(missing_ok=True)
    except (OSError, ValueError):
        pass


def sweep_stale_parts(directory: str, max_age: float) -> int:
    """Delete the part files nobody will resume: untouched for ``max_age``
    seconds, far longer than a live download may stall (read_timeout), so no
    writer is left. A part is normally resumed by its job's retry or removed
    when the job fails for good; this catches the rest (a run deleted from
    Redis, a flushed queue)."""
    cutoff, removed = time.time() - max_age, 0
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            if entry.name.endswith(".part") and entry.is_file() and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
                removed += 1
        except FileNotFoundError:
            pass  # another worker swept it first
    return removed


def _folder(directory: str) -> Path:
    """Made once per process, not once per file (_stream makes it again if it
    was removed meanwhile)."""
    if directory not in _made:
        Path(directory).mkdir(parents=True, exist_ok=True)
        _made.add(directory)
    return Path(directory)


def _fetch(link: str, part: Path, final: Path, max_size: int, timeouts: tuple[float, float], check_image: bool,
           user_agent: str, superseded=None) -> int:
    try:
        have = os.stat(part).st_size
    except FileNotFoundError:
        have = 0
    headers = {"User-Agent": user_agent}
    if have:
        headers["Range"] = f"bytes={have}-"
    response = None
    try:
        response = http_get.get(link, headers, *timeouts)
        if response.status == 416 and have:  # our .part is stale or whole: start over
            part.unlink()
            raise TransientDownloadError("stale partial file discarded; retrying", retry_after=0)
        _check_status(response)
        resume = response.status == 206 and have > 0
        expected = _expected_size(response, have if resume else 0)
        if expected is not None and expected > max_size:
            raise PermanentDownloadError(f"too large: {expected} bytes > max size {max_size}")
        _check_content_type(response, check_image)
        written = _stream(response, part, resume, have, max_size, check_image)
    except http.client.InvalidURL as exc:
        raise PermanentDownloadError(f"malformed URL {link!r}: {exc}") from None
    except http_get.TooManyRedirects as exc:
        raise PermanentDownloadError(str(exc)) from None
    except ssl.SSLCertVerificationError as exc:
        raise PermanentDownloadError(f"TLS certificate not trusted: {exc.verify_message}") from None
    except TimeoutError:
        raise TransientDownloadError(f"network error: timed out (connect {timeouts[0]:g} s, "
                                     f"read {timeouts[1]:g} s)") from None
    except (OSError, http.client.HTTPException) as exc:  # refused, reset, DNS, a garbled response
        raise TransientDownloadError(f"network error: {type(exc).__name__}: {_short(exc)}") from None
    finally:
        if response is not None:
            response.release()  # kept alive only if the body was read to its end
    if expected is not None and written != expected:
        raise TransientDownloadError(f"truncated: got {written} of {expected} bytes")
    if superseded is not None and superseded():  # another attempt owns the job now: its file, not ours
        raise AttemptSuperseded(f"{link}: this attempt is no longer current; the file is left to the current one")
    os.replace(part, final)  # atomic: the final name only ever holds a complete file
    return written


def _check_status(response: http_get.Response) -> None:
    code = response.status
    if code in (200, 206):
        return
    reason = f"HTTP {code} {response.reason or ''}".strip()
    if code == 429 or code >= 500:
        raise TransientDownloadError(reason, retry_after=_retry_after(response))
    raise PermanentDownloadError(reason)


def _retry_after(response: http_get.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    when = email.utils.parsedate_to_datetime(value)
    return max(0.0, when.timestamp() - time.time()) if when else None


def _expected_size(response: http_get.Response, offset: int) -> int | None:
    length = response.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def _check_content_type(response: http_get.Response, check_image: bool) -> None:
    kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if check_image and kind and not kind.startswith("image/") and kind != "application/octet-stream":
        raise PermanentDownloadError(f"not an image (Content-Type {kind})")


def _looks_like_image(head: bytes) -> bool:
    if head.startswith(IMAGE_MAGIC):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    return head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"heic", b"mif1")


def _stream(response: http_get.Response, part: Path, resume: bool, have: int, max_size: int,
            check_image: bool) -> int:
    written = have if resume else 0
    buffer = _buffer()
    fd = _open_part(part, resume)
    try:
        first = not resume
        while size := response.readinto(buffer):
            chunk = buffer[:size]
            if first and check_image and not _looks_like_image(bytes(chunk[:16])):
                raise PermanentDownloadError("not an image (content does not start like JPEG, PNG, GIF, WebP...)")
            first = False
            written += size
            if written > max_size:
                raise PermanentDownloadError(f"too large: more than max size {max_size} bytes")
            while chunk:
                chunk = chunk[os.write(fd, chunk):]
        if first and check_image:  # no byte at all
            raise PermanentDownloadError("not an image (empty response)")
    except PermanentDownloadError:
        os.close(fd)
        fd = -1
        part.unlink(missing_ok=True)  # nothing worth resuming
        raise
    finally:
        if fd >= 0:
            os.close(fd)
    return written


def _buffer() -> memoryview:
    """One read buffer per thread, reused: a fresh 64 KiB object per chunk
    costs an allocation and its page faults, every chunk."""
    buffer = getattr(_buffers, "view", None)
    if buffer is None:
        buffer = _buffers.view = memoryview(bytearray(CHUNK))
    return buffer


def _open_part(part: Path, resume: bool) -> int:
    """A raw descriptor: Python's buffered file object adds an fstat, an isatty
    ioctl and an lseek per file, and on a fast server every system call is a
    GIL hand-off between the download threads."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if resume else os.O_TRUNC)
    try:
        return os.open(part, flags, 0o666)
    except FileNotFoundError:  # the directory was removed since _folder made it
        part.parent.mkdir(parents=True, exist_ok=True)
        return os.open(part, flags, 0o666)


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "..."
