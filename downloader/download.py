"""download_link: the job. Fetch one URL into the shared directory, safely.

- Each attempt streams into a part file of its own (transfer/part.py) and
  renames it into place only once its real size matches what the server
  announced, it starts like an image, and the attempt is still the job's
  current one: the final name only ever holds a complete, verified file,
  even after SIGKILL, and two attempts of one job never write one file.
- Idempotent: a regular file under the final name is skipped and counted as
  skipped (a symlink or anything else there is not "complete": it is replaced).
- Transient failures (reset, timeout, 429, 5xx) raise TransientDownloadError,
  which jobqueue retries (honouring Retry-After, capped); permanent ones (404,
  403, too large, not an image, malformed URL, a redirect to another
  protocol) raise PermanentDownloadError and fail at once. A directory that
  refuses bytes (full, read-only, not ours) raises DiskError: the job fails at
  once and the worker holds off downloads until the directory takes bytes
  again (disk.py). A name taken from a URL never leaves the directory, and no
  symlink in it is followed.
"""

from __future__ import annotations

import os
import threading
import time

from jobqueue import get_current_job
from jobqueue.exceptions import AttemptSuperseded

from . import disk
from .exceptions import DiskError, TransientDownloadError
from .naming import check_url, file_name
from .runs import Runs
from .transfer import Folder, Limits, fetch, part_for

_folders: dict[str, Folder] = {}
_folders_lock = threading.Lock()


def download_link(directory: str, link: str, run: str | None = None, max_size: int = 50 * 2**20,
                  connect_timeout: float = 5.0, read_timeout: float = 30.0, check_image: bool = True,
                  user_agent: str = "downloader/0.1", max_retry_after: float = 3600.0) -> dict:
    """Download ``link`` into ``directory``; returns what happened (as the job's result)."""
    link = check_url(link)
    limits = Limits(connect_timeout, read_timeout, max_size, check_image, user_agent, max_retry_after)
    folder = _folder(disk.directory_for(directory))
    name = file_name(link)  # never a path: no separator, no leading dot
    job = get_current_job()
    runs = Runs.of(job.connection) if job is not None and run else None
    size = folder.complete(name)
    if size is not None:
        if runs:
            runs.mark(run, link, "skipped", job=job)
        return {"status": "skipped", "file": name, "bytes": size}
    superseded = (lambda: job.is_superseded(refresh=False)) if job is not None else None
    part = part_for(folder, name, job.id if job is not None else None, job.attempt if job is not None else 0, limits)
    try:
        nbytes = fetch(link, part, limits, superseded)
        if superseded is not None and superseded():  # another attempt owns the job now: its file, not ours
            raise AttemptSuperseded(f"{link}: this attempt is no longer current; the file is left to the current one")
        part.commit()
    except TransientDownloadError:
        part.keep()  # for the next attempt to resume, if the server lets it validate
        raise
    except DiskError as exc:
        part.discard()
        disk.refused(folder.path, exc.cause)
        raise
    except BaseException:
        part.discard()
        raise
    if runs:
        runs.mark(run, link, "done", nbytes, job=job)
    return {"status": "done", "file": name, "bytes": nbytes}


def sweep_stale_parts(directory: str, max_age: float) -> int:
    """Delete the part files nobody will resume: untouched for ``max_age``
    seconds, far longer than a live download may stall (read_timeout), so no
    writer is left. A part is normally taken over by its job's next attempt
    or removed when the job fails for good; this catches the rest (a run
    deleted from Redis, a flushed queue)."""
    cutoff, removed = time.time() - max_age, 0
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            if entry.name.endswith((".part", ".meta")) and entry.is_file(follow_symlinks=False) \
                    and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)
                removed += 1
        except FileNotFoundError:
            pass  # another worker swept it first
    return removed


def _folder(directory: str) -> Folder:
    """Opened once per process, not once per file; opened again if the
    directory was removed or replaced meanwhile."""
    with _folders_lock:
        folder = _folders.get(directory)
        if folder is None or not folder.still_there():
            if folder is not None:
                folder.close()
            try:
                folder = _folders[directory] = Folder(directory)
            except DiskError as exc:
                disk.refused(directory, exc.cause)
                raise
        return folder
