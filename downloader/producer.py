"""The producer: turns the links it reads into a run's download jobs, in
batches, while it holds the run's lease.

Honest counts: each job and its URL (the run's total is the number of
URLs) are written in one atomic step (Queue.enqueue_once, which leaves out a
URL the run has), so the run never counts a job that does not exist. A
producer that stops early (Ctrl+C, SIGKILL, a lost connection) leaves its
run ``enqueuing``; once its lease lapses the run reads as interrupted, and
`fetch --resume` (or the same fetch again) takes the lease and enqueues only
the links the run does not have yet.

Batches are built on the caller's thread and written by WRITERS threads of
the producer's own, taken in the order they were added: reading and building
the next batch, and sending one, overlap with Redis's work on another. At
most WRITERS + 1 batches wait for them, so memory stays bounded."""

from __future__ import annotations

import json
import os
import queue
import secrets
import sys
import threading
import time
from importlib import resources
from typing import Any, Callable, Iterable, NamedTuple

import redis

from jobqueue import DuplicateJobError, Queue, Retry, Script
from jobqueue.queue import PreparedCalls

from . import disk
from .config import Settings
from .exceptions import RunBusy, RunCanceled
from .archive import member as archive_member
from .layout import Layout
from .runs import BEGIN, DELETED, RUN_JOB, Runs, job_id
from .sources import Item

LEASE = float(os.environ.get("DOWNLOADER_PRODUCER_LEASE", "10"))  # seconds a silent producer keeps its run
RELEASE_WAIT = 1.0  # seconds an interrupted producer waits to hand its lease back
# links per batch: workers start on the first batch, not after the last; a batch's fixed cost (its
# round trip, its state check) is what a bigger one saves (bench/README.md)
BATCH = int(os.environ.get("DOWNLOADER_PRODUCER_BATCH", "1000"))
SWITCH_INTERVAL = 0.0005  # seconds (Python's default: 0.005)
# batches in flight at once: while Redis takes one, the next is sent (its jobs leave out a URL the run has
# in the same atomic step, so two batches cannot race); bench/README.md
WRITERS = 2
LEASE_SCRIPT = Script("downloader.lease", resources.files(__package__).joinpath("scripts/lease.lua").read_text())


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class Producer:
    """``with Producer.new(...) as p: p.add(links); p.seal(n)``."""

    def __init__(self, runs: Runs, run_id: str, settings: Settings, token: str) -> None:
        self.runs, self.run_id, self.settings, self.token = runs, run_id, settings, token
        self.added = 0
        self._sealed, self._lost = False, False
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew, name=f"lease {run_id}", daemon=True)
        self._batches: queue.Queue[Prepared | None] = queue.Queue(maxsize=WRITERS + 1)
        self._writers = [threading.Thread(target=self._write_all, name=f"enqueue {run_id} #{n}", daemon=True)
                         for n in range(WRITERS)]
        self._counting = threading.Lock()
        self._failure: BaseException | None = None

    @classmethod
    def new(cls, runs: Runs, source: str, spec: dict[str, Any], settings: Settings, expected: int = 0) -> "Producer":
        """A new run, ``enqueuing``, whose lease this producer holds from the
        start; ``expected``: the links it will enqueue, when known."""
        run_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
        shown, carried = disk.placement(settings.dir, settings.root)
        token = secrets.token_hex(8)
        keys = runs.keys_of(run_id)  # the run's shard: all of the run in one slot
        created = time.time()
        fields = {"id": run_id, "created": created, "source": source, "spec": json.dumps(spec), "directory": shown,
                  "target": carried, "queue": settings.queue, "bytes": 0, "state": "enqueuing",
                  "keep": settings.keep_runs, "expected": expected, "job": _encode(job_options(settings, carried))}
        BEGIN(runs.connection, keys.run(run_id), keys.producer(run_id), keys.runs, run_id, created, token,
              int(LEASE * 1000), *[x for pair in fields.items() for x in pair], keys=(keys.run(run_id),))
        return cls(runs, run_id, settings.with_overrides(dir=carried), token)

    @classmethod
    def resume(cls, runs: Runs, run_id: str, settings: Settings, expected: int = 0) -> "Producer":
        """Take over an interrupted run: same queue, same directory."""
        if runs.progress(run_id).canceled:
            raise RunCanceled(f"run {run_id} was canceled; start a new one with `downloader fetch`")
        queue, target, shown = runs.info(run_id, "queue", "target", "directory")
        token = secrets.token_hex(8)
        keys = runs.keys_of(run_id)
        if not _lease(runs, run_id, token, "take", int(LEASE * 1000)):
            raise RunBusy(f"run {run_id} is being enqueued by another `downloader fetch` right now; wait for it "
                          f"(`downloader status {run_id}`), or stop that one first")
        if expected:
            runs.connection.hset(keys.run(run_id), "expected", expected)
        # a run made before its jobs were compact gets its options now (a made run's never change)
        runs.connection.hsetnx(keys.run(run_id), "job", _encode(job_options(settings, target or shown)))
        return cls(runs, run_id, settings.with_overrides(queue=queue, dir=target or shown), token)

    def __enter__(self) -> "Producer":
        # The writer threads are the critical path: after each Redis reply one waits for the GIL while the
        # reading thread builds the next batch. A shorter switch interval hands it over sooner
        # (+5-6% links/s side by side, bench/README.md); restored on exit.
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL))
        self._renewer.start()
        for writer in self._writers:
            writer.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if exc[0] is None:
                self.flush()  # every batch added is written (or its error raised) before the run is let go
        finally:
            self._stop.set()  # (after an error or Ctrl+C, batches still waiting are not written)
            for _ in self._writers:
                self._put(None)
            self._renewer.join(RELEASE_WAIT)  # a renewal stuck on a stalled link must not hold Ctrl+C up
            if not self._sealed:  # the run reads as interrupted at once, not a lease later
                releasing = threading.Thread(target=self._release, name=f"release {self.run_id}", daemon=True)
                releasing.start()
                releasing.join(RELEASE_WAIT)  # Ctrl+C on a stalled link must not hang: then the lease lapses
            sys.setswitchinterval(self._switch_interval)

    def _release(self) -> None:
        try:
            _lease(self.runs, self.run_id, self.token, "release", 0)
        except redis.exceptions.RedisError:
            pass  # the lease lapses by itself

    def _renew(self) -> None:
        while not self._stop.wait(LEASE / 3):
            try:
                if not _lease(self.runs, self.run_id, self.token, "renew", int(LEASE * 1000)):
                    self._lost = True
                    return
            except redis.exceptions.RedisError:
                pass  # the batch that needs Redis will say so

    # -- enqueueing -------------------------------------------------------------------

    def add(self, entries: Iterable[str | tuple[str, dict]]) -> None:
        """Have those of ``entries`` (URLs, or (URL, job extras) pairs; see
        ``extras``) the run does not have yet enqueued, in batches, by the
        writer thread; an error of an earlier batch is raised here."""
        batch: list[tuple[str, dict]] = []
        for entry in entries:
            batch.append((entry, {}) if isinstance(entry, str) else entry)
            if len(batch) == BATCH:
                self._hand_over(batch)
                batch = []
        if batch:
            self._hand_over(batch)

    def flush(self) -> None:
        """Wait until every batch added is written; raise what went wrong."""
        self._batches.join()
        self._raise_failure()

    def _hand_over(self, batch: list[tuple[str, dict]]) -> None:
        self._raise_failure()
        self._put(prepare(self.runs, self.run_id, self.settings, batch))

    def _put(self, item: "Prepared | None") -> None:
        """Queue a batch (or the writer's end), never waiting on a writer that
        has stopped (failed, or stuck on a stalled link at Ctrl+C)."""
        while True:
            try:
                self._batches.put(item, timeout=0.2)
                return
            except queue.Full:
                if not any(w.is_alive() for w in self._writers) or (item is None and self._stop.is_set()):
                    return
                self._raise_failure()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _write_all(self) -> None:
        """A writer thread: batches in the order added, up to WRITERS at once
        (a batch may land before the one added just before it). After a
        failure nothing more is written (what follows may depend on what failed)."""
        while True:
            try:
                batch = self._batches.get(timeout=0.5)
            except queue.Empty:
                if self._stop.is_set():
                    return  # the producer was let go (its end could not be queued)
                continue
            try:
                if batch is None:
                    return
                if self._failure is None and not self._stop.is_set():
                    if self._lost:
                        raise RunBusy(f"another producer took over run {self.run_id} (this one was silent for over "
                                      f"{LEASE:g} s); it enqueues the rest")
                    write_prepared(self.runs, self.run_id, self.settings, batch, written=self._count)
            except BaseException as exc:  # handed to the caller's thread
                self._failure = exc
            finally:
                self._batches.task_done()

    def _count(self, enqueued: int) -> None:
        with self._counting:  # (two writers)
            self.added += enqueued  # as each batch lands, for the word on Ctrl+C

    def seal(self, expected: int | None = None) -> None:
        """Every link read is enqueued: the run can complete (``expected``:
        its total, by default what the run holds once every batch is written)."""
        self.flush()
        if expected is None:
            expected = self.runs.progress(self.run_id).total
        was = self.runs.set_state(self.run_id, "enqueued", expected, self.token)
        if was == "lost":
            raise RunBusy(f"another producer took over run {self.run_id}; it completes the run")
        self._sealed = True


def extras(item: Item, layout: Layout | None = None, metadata: bool = False, archive: str = "") -> dict:
    """What a download job needs beyond its URL: the file's name in the run's
    layout, that it is a video, its sidecar's content, its archive entry.
    Kept in the run too (its URL map), so a job enqueued again gets them."""
    out: dict[str, Any] = {}
    if layout is not None and item.kind != "links":
        out["name"] = layout.name(item)
    if item.video:
        out["video"] = True
    if metadata:
        out["meta"] = {k: v for k, v in item.fields().items() if v not in ("", 0) and k != "ext"}
    if archive and archive_member(item):
        out["item"] = archive_member(item)  # recorded in the run's archive (job_options)
    return out


class Prepared(NamedTuple):
    """A batch's jobs, built and serialized, not yet written."""
    entries: list[tuple[str, dict]]  # (URL, extras), each URL once
    jobs: PreparedCalls


def prepare(runs: Runs, run_id: str, settings: Settings, batch: list[tuple[str, dict]]) -> Prepared:
    """Build the download jobs of ``batch`` ((URL, extras) pairs): Python's
    work, done while the previous batch is being written."""
    entries = list(dict(reversed(batch)).items())[::-1]  # a URL twice in one batch: once (the first)
    retry = Retry(max=settings.retries, interval=settings.retry_intervals) if settings.retries > 0 else None
    queue = runs.queue(run_id, settings.queue)  # (building sends nothing)
    calls = (((url, run_id), more, job_id(run_id, url)) for url, more in entries)
    return Prepared(entries, queue.prepare_calls(RUN_JOB, calls, retry=retry, timeout=settings.job_timeout,
                                                 on_failure="downloader.runs.on_download_failed",
                                                 failure_ttl=int(settings.keep_runs) or None))


def write_batch(runs: Runs, run_id: str, settings: Settings, batch: list[tuple[str, dict]], only_new: bool = True,
                written: Callable[[int], None] | None = None) -> int:
    """Enqueue download jobs for ``batch`` ((URL, extras) pairs; with
    ``only_new``, those the run does not have yet) and record them in the
    run's URL map, each job in the same atomic step as its URL (then
    ``written`` hears how many); should the run have been canceled or
    deleted meanwhile, withdraw them. Returns how many were enqueued."""
    return write_prepared(runs, run_id, settings, prepare(runs, run_id, settings, batch), only_new, written)


def write_prepared(runs: Runs, run_id: str, settings: Settings, prepared: Prepared, only_new: bool = True,
                   written: Callable[[int], None] | None = None) -> int:
    """``write_batch`` for a batch already prepared."""
    entries, jobs = prepared
    if not entries:
        return 0
    urls, queue = runs.keys_of(run_id).urls(run_id), runs.queue(run_id, settings.queue)
    mapped = [(url, _encode(more) if more else "") for url, more in entries]
    try:
        if only_new:  # a URL the run has is left out, in Redis: batches in flight at once cannot race
            enqueued = queue.enqueue_once(jobs, urls, mapped)
        else:
            queue.enqueue_prepared(jobs, also=[("HSET", urls, *(x for entry in mapped for x in entry))])
            enqueued = len(entries)
    except DuplicateJobError as exc:
        enqueued = exc.count  # live already (a producer that took over raced this one): one job all the same
    if written is not None:
        written(enqueued)
    state = runs.info(run_id, "state")[0]
    if state in ("canceled", DELETED, None):  # while this batch was on its way
        _withdraw(runs, run_id, queue, jobs.ids, state, settings.keep_runs)
    return enqueued


def _lease(runs: Runs, run_id: str, token: str, op: str, ttl_ms: int) -> Any:
    """lease.lua on the run's producer lease (the key routes the call on a cluster)."""
    key = runs.keys_of(run_id).producer(run_id)
    return LEASE_SCRIPT(runs.connection, key, token, op, ttl_ms, keys=(key,))


def job_options(s: Settings, directory: str) -> dict[str, Any]:
    """What every download of a run shares, recorded once on the run
    (``Runs.job_options``) instead of in each of its jobs."""
    return {"dir": directory, "max_size": s.max_size, "connect_timeout": s.connect_timeout,
            "read_timeout": s.read_timeout, "check_image": s.check_image, "user_agent": s.user_agent,
            "max_retry_after": s.max_retry_after, "archive": s.archive}


def _withdraw(runs: Runs, run_id: str, queue: Queue, ids: list[str], state: str | None, keep: float) -> None:
    """A cancel that listed the run's jobs before this batch landed set the
    state first, so the batch is ours to take back."""
    if state == "canceled":
        queue.cancel_many(ids, failure_ttl=int(keep) or None)
        raise RunCanceled(f"run {run_id} was canceled while it was being enqueued; enqueueing stopped")
    queue.delete_many(ids)
    runs.connection.delete(runs.keys_of(run_id).urls(run_id))  # the batch brought the key back
    raise RunCanceled(f"run {run_id} was deleted while it was being enqueued; enqueueing stopped")
