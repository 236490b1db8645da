"""Execution strategies: where a job's function runs.

``ThreadSlots`` runs jobs on threads of the worker process (cheap, for
I/O-bound work); a job that returns a Future gives its thread back at once
and holds only its slot until the future resolves. ``ForkSlots`` runs each job in a forked work horse, like
RQ's default, so a crash or a leak dies with the child. Both report an
``Outcome`` on the worker's event queue and can be told to ``stop`` an
attempt (timeout, cold shutdown, superseded). Attempts are named by
``attempt_key`` (the started-registry member), never by job id alone: one
worker may hold a superseded and a current attempt of one job.
``InlineSlots`` calls each function on the worker's own thread, for jobs
that only start work on the loop the worker drives (driven.py).
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from queue import SimpleQueue
from typing import TYPE_CHECKING

from ..exceptions import AttemptSuperseded, JobTimeoutError
from ..backend import Backend
from ..imports import FunctionImporter
from ..job import Job
from ..scripts import Script
from .outcome import Outcome, attempt_key, get_current_job, run_job, settle, stopped

__all__ = ["Outcome", "attempt_key", "get_current_job", "make_slots", "ThreadSlots", "InlineSlots", "ForkSlots"]
log = logging.getLogger("jobqueue.worker")

if TYPE_CHECKING:
    from .lane import Lane


@dataclass
class Running:
    """One attempt this worker holds a slot for, until its code has returned."""
    job: Job
    queue: str
    lane: Lane
    deadline: float | None    # monotonic; None = no timeout
    state: str = "running"    # running | settled (outcome taken: timed out, returned) | superseded


def _raise_in_thread(ident: int, exc_type: type[BaseException] | None) -> None:
    """Have ``exc_type`` raised in that thread at its next bytecode; None withdraws one not yet raised."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident),
                                               ctypes.py_object(exc_type) if exc_type else None)


class ThreadSlots:
    """A pool of ``size`` threads. The worker never starts more attempts than
    it has slots free, and a slot is free only when its code has returned:
    a thread stuck in a stopped job keeps its slot (``-c N`` never runs more
    than N at once)."""

    stops_by_exception = True  # ForkSlots kill the horse instead

    def __init__(self, size: int, events: SimpleQueue, importer: FunctionImporter) -> None:
        self.size, self.events, self.importer = size, events, importer
        self._work: SimpleQueue = SimpleQueue()
        self._lock = threading.Lock()
        self._running: dict[str, int | Future] = {}  # attempt key -> thread ident or future (thread mode), pid (fork)
        self._threads = 0
        self._idle = 0      # threads waiting for a job
        self._backlog = 0   # jobs queued while every thread was busy (a thread takes one when done)

    def start(self, job: Job) -> None:
        with self._lock:  # a thread of our own per job, up to ``size``; past that, the next free one
            spawn = False
            if self._idle:
                self._idle -= 1
            elif self._threads < self.size:
                self._threads, spawn = self._threads + 1, True
            else:
                self._backlog += 1
        self._work.put(job)
        if spawn:
            threading.Thread(target=self._slot, name=f"slot-{self._threads}", daemon=True).start()

    def _slot(self) -> None:
        while True:
            job = self._work.get()
            if job is None:  # close()
                self._retire()
                return
            outcome = self._run_one(job)
            with self._lock:  # count ourselves idle before the worker hears of the outcome
                retire = self._threads > self.size
                if retire:
                    self._threads -= 1
                elif self._backlog:
                    self._backlog -= 1
                else:
                    self._idle += 1
            if outcome is not None:  # None: a future's outcome comes when it resolves
                self.events.put(("done", outcome))
            if retire:
                self._retire()
                return
            self._after_job()

    def _run_one(self, job: Job) -> Outcome | None:
        """Run one attempt; a stop aimed at it never reaches the slot's next job.
        ``stop`` raises only while the attempt is registered, under the lock;
        a stop that has not landed when the attempt is unregistered is
        withdrawn, and one that lands on the way out is caught here. None:
        the job returned a future, which now holds the slot (``_hold``)."""
        key, outcome, start = attempt_key(job), None, time.perf_counter()
        try:
            try:
                outcome = self._execute(job)
            except (JobTimeoutError, AttemptSuperseded):
                outcome = stopped(job)
            except Exception as exc:  # the slot's own failure (fork: out of processes): the job fails, we live on
                log.exception("Slot could not run job %s", job.id)
                outcome = Outcome(key, False, None, f"WorkerError: the worker could not run the job: "
                                                    f"{type(exc).__name__}: {exc}")
            if isinstance(outcome, Future):
                return self._hold(job, key, outcome, start)
            self._unregister(key)
        except (JobTimeoutError, AttemptSuperseded):  # landed after the attempt returned, before it was unregistered
            self._unregister(key)
        return outcome if isinstance(outcome, Outcome) else stopped(job)

    def _hold(self, job: Job, key: str, future: Future, start: float) -> None:
        """The attempt is its future now: ``stop`` cancels it, and its outcome
        is reported by whichever thread resolves it."""
        with self._lock:
            current = key in self._running
            if current:
                self._running[key] = future
            else:  # stopped while the function ran: withdraw a stop not yet raised here, and cancel
                _raise_in_thread(threading.get_ident(), None)
        if not current:
            future.cancel()

        def resolved(done: Future) -> None:
            with self._lock:
                if self._running.get(key) is done:
                    del self._running[key]
            self.events.put(("done", settle(job, self.importer, done, start)))

        future.add_done_callback(resolved)

    def _unregister(self, key: str) -> None:
        with self._lock:
            if self._running.pop(key, None) is None and self.stops_by_exception:
                _raise_in_thread(threading.get_ident(), None)  # stop() took the key: withdraw its exception

    def close(self) -> None:
        """Let the slot threads end (they are idle when the worker stops)."""
        with self._lock:
            count, self._threads, self._idle, self._backlog = self._threads, 0, 0, 0
        for _ in range(count):
            self._work.put(None)

    def _execute(self, job: Job) -> Outcome | Future:
        with self._lock:
            self._running[attempt_key(job)] = threading.get_ident()
        return run_job(job, self.importer)

    def _after_job(self) -> None:
        """Called on the slot thread once an outcome is reported."""

    def _retire(self) -> None:
        """Called on a slot thread that is about to end."""

    def stop(self, key: str, reason: type[BaseException] = JobTimeoutError) -> None:
        """Raise ``reason`` inside the attempt's thread (a thread blocked in C,
        a long sleep or a socket read without timeout, sees it only when it
        returns), or cancel the attempt's future."""
        with self._lock:
            target = self._running.pop(key, None)
            if isinstance(target, int):
                _raise_in_thread(target, reason)
        if isinstance(target, Future):
            target.cancel()


class InlineSlots(ThreadSlots):
    """Each job's function called at once, on the worker's thread: it starts
    its work on the worker's event loop and returns a Future (driven.py). A
    stop cancels the future; nothing is ever raised into the worker's thread."""

    def start(self, job: Job) -> None:
        outcome = self._run_one(job)
        if outcome is not None:
            self.events.put(("done", outcome))

    def _execute(self, job: Job) -> Outcome | Future:
        with self._lock:
            self._running[attempt_key(job)] = None  # not a thread to raise in: stop() cannot land mid-call anyway
        return run_job(job, self.importer)

    def _unregister(self, key: str) -> None:
        with self._lock:
            self._running.pop(key, None)


class ForkSlots(ThreadSlots):
    """Each job in a fresh forked child (a work horse). Each slot thread forks
    its next horse ahead of time, while the worker records the last job, so
    fork() is off the job's path; a horse runs exactly one job, then exits.
    A stop kills the horse.
    Horses die with the worker (PR_SET_PDEATHSIG), so a SIGKILLed worker never
    leaves a job running on."""

    stops_by_exception = False

    def __init__(self, size: int, events: SimpleQueue, importer: FunctionImporter, backends: list[Backend]) -> None:
        super().__init__(size, events, importer)
        self.backends = backends  # what the horse's Job talks to (save_meta, get_current_job): its lane's
        self._spare = threading.local()

    def _execute(self, job: Job) -> Outcome:
        horse = getattr(self._spare, "horse", None) or _Horse.fork(self.importer, self.backends)
        self._spare.horse = None
        with self._lock:
            self._running[attempt_key(job)] = horse.pid
        lane = next((i for i, b in enumerate(self.backends) if b is job.backend), 0)
        outcome = horse.run(job, lane)
        self._warm_import(job.func_name)
        return outcome

    def _after_job(self) -> None:
        self._spare.horse = _Horse.fork(self.importer, self.backends)

    def _retire(self) -> None:
        horse = getattr(self._spare, "horse", None)
        if horse is not None:
            horse.dismiss()
            self._spare.horse = None

    def _warm_import(self, path: str) -> None:
        """Import the job's function in the worker too, so later horses inherit
        it. Under the fork lock: a horse forked mid-import would inherit a held
        import lock and hang on its first import."""
        with _Horse._fork_lock:
            try:
                self.importer(path)
            except Exception:
                pass  # the horse already reported the error

    def stop(self, key: str, reason: type[BaseException] = JobTimeoutError) -> None:
        with self._lock:
            pid = self._running.pop(key, None)
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class _Horse:
    """A forked child waiting for one job on a pipe.

    Pipes signal the end of a message by EOF, which only comes when no other
    process holds the write end: so horses are forked one at a time
    (``_fork_lock``) and each child closes the worker-side ends of all the
    other horses' pipes (``_worker_fds``)."""

    _fork_lock = threading.Lock()
    _worker_fds: set[int] = set()

    def __init__(self, pid: int, job_w: int, result_r: int) -> None:
        self.pid, self.job_w, self.result_r = pid, job_w, result_r

    @classmethod
    def fork(cls, importer: FunctionImporter, backends: list[Backend]) -> "_Horse":
        with cls._fork_lock:
            job_r, job_w = os.pipe()
            result_r, result_w = os.pipe()
            parent = os.getpid()
            pid = os.fork()
            if pid == 0:
                for fd in (job_w, result_r, *cls._worker_fds):
                    try:
                        os.close(fd)
                    except OSError:
                        pass
                cls._child(importer, backends, job_r, result_w, parent)
            os.close(job_r)
            os.close(result_w)
            cls._worker_fds.update((job_w, result_r))
        return cls(pid, job_w, result_r)

    @classmethod
    def _release(cls, fd: int) -> None:
        with cls._fork_lock:
            cls._worker_fds.discard(fd)
            os.close(fd)

    def dismiss(self) -> None:
        """No job for this horse: EOF on its job pipe makes it exit."""
        self._release(self.job_w)
        self._release(self.result_r)
        os.waitpid(self.pid, 0)

    def run(self, job: Job, lane: int) -> Outcome:
        try:
            _write_all(self.job_w, json.dumps([lane, job.fields()]).encode())
        except BrokenPipeError:
            pass  # the horse died before the job: reported below
        finally:
            self._release(self.job_w)
        chunks = []
        while chunk := os.read(self.result_r, 65536):
            chunks.append(chunk)
        self._release(self.result_r)
        data = b"".join(chunks)
        _, status = os.waitpid(self.pid, 0)
        if data:
            fields = json.loads(data)
            fields["writes"] = [(Script(name, source), argv) for name, source, argv in fields.get("writes", [])]
            return Outcome(attempt_key(job), **fields)
        how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit code {os.waitstatus_to_exitcode(status)}"
        return Outcome(attempt_key(job), False, None, f"WorkHorseTerminatedError: work horse {self.pid} died ({how}) while running the job")

    @staticmethod
    def _child(importer: FunctionImporter, backends: list[Backend], job_r: int, result_w: int, parent: int) -> None:
        try:
            _die_with_parent(parent)
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            with os.fdopen(job_r, "rb") as pipe:
                data = pipe.read()
            if not data:
                return  # the worker is shutting down: no job for this horse
            lane, fields = json.loads(data)
            job = Job.from_fields(backends[lane], fields)
            outcome = run_job(job, importer, wait=True)
            fields = dict(outcome.__dict__)
            del fields["key"]
            fields["writes"] = [(script.name, script.source, argv) for script, argv in outcome.writes]
            payload = json.dumps(fields).encode()
            with os.fdopen(result_w, "wb") as pipe:
                pipe.write(payload)
        finally:
            os._exit(0)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel SIGKILLs us when the worker dies. Checked once after
    arming, in case the worker died before."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


def make_slots(size: int, fork: bool, events: SimpleQueue, importer: FunctionImporter,
               backends: list[Backend], inline: bool = False) -> ThreadSlots:
    if inline:
        return InlineSlots(size, events, importer)
    return ForkSlots(size, events, importer, backends) if fork else ThreadSlots(size, events, importer)

