"""download_link: the job. Fetch one URL into the shared directory, safely.
(A run enqueues ``download_for_run``: the same, with what the run's links
share read from the run.)

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

import hashlib
import os
import re
import threading
import time
from concurrent.futures import Future, InvalidStateError
from typing import Any

from jobqueue import get_current_job
from jobqueue.exceptions import AttemptSuperseded

from . import disk, sidecar
from .exceptions import DiskError, DownloaderError, TransientDownloadError, Unreachable
from .naming import check_url, file_name, relative
from . import politeness
from .politeness import HostGate, host_of
from .runs import Runs
from .transfer import Folder, Limits, Part, Transfer, TransferCancelled, part_for

RECV_LIMIT = 0  # bytes/s each download may take: `work --limit-rate` over its concurrency (0: no cap)
ATTEMPT_FILE = re.compile(r"\.([0-9a-f]{10}|solo)\.\d+\.(part|meta)$|\.json\.[0-9a-f]{10}\.tmp$")
_folders: dict[str, Folder] = {}
_folders_lock = threading.Lock()


def start_download(directory: str, link: str, run: str | None = None, max_size: int = 50 * 2**20,
                   connect_timeout: float = 5.0, read_timeout: float = 30.0, check_image: bool = True,
                   user_agent: str = "downloader/0.1", max_retry_after: float = 3600.0, name: str | None = None,
                   video: bool = False, meta: dict | None = None, archive: str = "", item: str = "") -> Future:
    """Start downloading ``link`` into ``directory`` (as ``name``, a path
    inside it that the run's layout chose; else a name from the URL) on this
    process's libcurl loop; the future resolves to what happened (the job's
    result). Cancelling it (a timeout, a superseded attempt) stops the
    transfer and removes its part. A disk that refuses bytes raises here at
    once. ``meta``: write a sidecar (--metadata); ``archive``/``item``: the
    download archive that records the item once its file is complete."""
    link = check_url(link)
    limits = Limits(connect_timeout, read_timeout, max_size, check_image, user_agent, max_retry_after, video,
                    RECV_LIMIT)
    job = get_current_job()
    folder = _folder(disk.directory_for(directory), make=job is None)
    name = name or None
    if name:
        *subfolders, name = relative(name)
        for sub in subfolders:
            folder = _child(folder, sub)
    else:
        name = file_name(link)  # never a path: no separator, no leading dot
    runs = Runs.of_job(job) if job is not None and run else None
    owner = job.id if job is not None else "solo"
    future: Future = Future()

    def settled(state: str, outcome: dict) -> None:
        """Recorded (with the sidecar first, when asked for one)."""
        if meta is not None and sidecar.missing(folder, name):
            sidecar.pool().submit(_with_sidecar, future, folder, name, {"url": link, **meta}, owner,
                                  lambda: record(state, outcome))
        else:
            record(state, outcome)

    def record(state: str, outcome: dict) -> None:
        if runs:
            runs.mark(run, link, state, outcome["bytes"] if state == "done" else 0, job=job, archive=(archive, item))
        _resolve(future, outcome)

    size = folder.complete(name)
    if size is not None:
        settled("skipped", {"status": "skipped", "file": name, "bytes": size})
        return future
    host = host_of(link)
    gate = HostGate.of(job.backend) if job is not None and politeness.ENABLED else None
    if gate is not None:
        gate.enter(host)  # or Postpone: the host has its fill of requests, or asked for a pause
    try:
        part = part_for(folder, name, job.id if job is not None else None, job.attempt if job is not None else 0,
                        limits)
    except BaseException:
        if gate is not None:
            gate.leave(host)
        raise
    if gate is not None:
        future.add_done_callback(lambda _: gate.leave(host))  # the permit goes with the download

    def finished(nbytes: int | None, error: BaseException | None) -> None:
        """On the loop's thread, once the part is ours alone again."""
        try:
            if future.cancelled():
                raise TransferCancelled(link)
            if error is not None:
                if gate is not None and getattr(error, "retry_after", None):  # 429/503 with Retry-After
                    gate.throttle(host, error.retry_after)
                raise error
            if job is not None and job.is_superseded(refresh=False):  # another attempt owns the job now
                raise AttemptSuperseded(f"{link}: this attempt is no longer current; the file is left to the current one")
            part.commit()
        except BaseException as exc:
            _settle_part(part, folder, exc)
            _resolve(future, exc)
            return
        settled("done", {"status": "done", "file": name, "bytes": nbytes})

    # the host may ask for a pause between the permit and the request (another worker's 503): looked at again
    transfer = Transfer(link, part, limits, finished, before=(lambda: gate.still_open(host)) if gate else None)
    try:
        transfer.start()
    except BaseException as exc:
        _settle_part(part, folder, exc)
        _resolve(future, exc)  # lets the permit go
        raise
    future.add_done_callback(lambda f: transfer.cancel() if f.cancelled() else None)
    return future


def _with_sidecar(future: Future, folder: Folder, name: str, meta: dict, owner: str, then) -> None:
    try:
        sidecar.write(folder, name, meta, hashlib.sha1(owner.encode()).hexdigest()[:10])
    except BaseException as exc:
        _resolve(future, exc)
        return
    then()


def download_link(directory: str, link: str, run: str | None = None, **options: Any) -> dict | Future:
    """The job: download ``link`` into ``directory``. In a worker it returns a
    future (jobqueue holds the job's slot, not a thread, until it resolves;
    cancelling it stops the transfer); called anywhere else, it blocks and
    returns what happened."""
    future = start_download(directory, link, run, **options)
    return future if get_current_job() is not None else future.result()


def download_for_run(link: str, run: str, **extras: Any) -> dict | Future:
    """The job ``fetch`` enqueues, compact: it carries its URL, its run and
    what is its own (name, sidecar fields, archive item); what all of the
    run's downloads share (directory, limits, archive) is the run's, read
    once per worker process."""
    job = get_current_job()
    if job is None:
        raise DownloaderError(f"download_for_run reads run {run} from its worker's Redis: call it in a worker, or "
                              f"call download_link(directory, link) to download one link here")
    directory, options = Runs.of_job(job).job_call(run, extras)
    return download_link(directory, link, run, **options)


def _settle_part(part: Part, folder: Folder, exc: BaseException) -> None:
    """What a failed attempt leaves: its bytes for the next attempt after a
    transient failure (if they can be validated), nothing otherwise."""
    if isinstance(exc, TransientDownloadError):
        part.keep()
        return
    part.discard()
    if isinstance(exc, DiskError):
        disk.refused(folder.path, exc.cause)


def _resolve(future: Future, outcome: dict | BaseException) -> None:
    try:
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
    except InvalidStateError:
        pass  # cancelled meanwhile: nobody waits for it


def sweep_stale_parts(directory: str, max_age: float) -> int:
    """Delete the part files nobody will resume: untouched for ``max_age``
    seconds, far longer than a live download may stall (read_timeout), so no
    writer is left. A part is normally taken over by its job's next attempt
    or removed when the job fails for good; this catches the rest (a run
    deleted from Redis, a flushed queue). Album folders are swept too; no
    symlink is followed, and only names an attempt makes are touched."""
    cutoff, removed = time.time() - max_age, 0
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                removed += sweep_stale_parts(entry.path, max_age)
            elif ATTEMPT_FILE.search(entry.name) and entry.is_file(follow_symlinks=False) \
                    and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)
                removed += 1
        except FileNotFoundError:
            pass  # another worker swept it first
    return removed


def _child(folder: Folder, name: str) -> Folder:
    """A run's subfolder (an album), opened once per process like the run's own."""
    path = os.path.join(folder.path, name)
    child = _folders.get(path)
    if child is not None and not child.gone():
        return child
    with _folders_lock:
        child = _folders.get(path)
        if child is None or child.gone():
            if child is not None:
                child.close()
            child = _folders[path] = folder.child(name)
        return child


def _folder(directory: str, make: bool) -> Folder:
    """Opened once per process, not once per file. A worker never makes a
    run's directory (the producer did): one it cannot find is a directory it
    cannot reach, and its files must not land somewhere else."""
    folder = _folders.get(directory)
    if folder is not None and not folder.gone():
        return folder
    if not make and not os.path.isdir(directory):
        raise Unreachable(f"cannot reach the run's directory {directory} from this machine (not found): mount it, "
                          "or start the worker with --root naming this machine's mount of the shared root")
    with _folders_lock:
        folder = _folders.get(directory)
        if folder is None or folder.gone():
            if folder is not None:
                folder.close()
            try:
                folder = _folders[directory] = Folder(directory, make=make)
            except DiskError as exc:
                disk.refused(directory, exc.cause)
                raise
        return folder
