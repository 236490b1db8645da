"""A worker that drives its jobs' event loop (Worker(loop=...), driven.py):
job functions are called on the worker's thread, which turns the loop
whenever it would wait; anything that must reach the worker wakes the loop."""

import os
import signal
import threading
import time

import pytest

from jobqueue import Job, JobStatus, Timing, Worker

from tests import jobs
from tests.conftest import FAST_TIMING
from tests.invariants import attempts, max_at_once

SLOW_TIMERS = Timing(heartbeat_interval=10, heartbeat_ttl=30, maintenance_interval=30, scheduler_interval=30,
                     idle_block=30)  # nothing but a wake-up ends a wait early


@pytest.fixture
def loop():
    jobs.LOOP = jobs.TimerLoop()
    yield jobs.LOOP
    jobs.LOOP = None


def test_a_driven_worker_runs_its_jobs_and_their_loop_on_its_own_thread(q, loop, tmp_path):
    log = tmp_path / "attempts.log"
    ids = [q.enqueue(jobs.on_loop, str(log), f"j{i}", 0.3).id for i in range(20)]
    failing = q.enqueue(jobs.on_loop, str(log), "bad", 0.1, fail=True)
    stuck = q.enqueue(jobs.on_loop, str(log), "stuck", 3600, job_timeout=1)
    plain = q.enqueue(jobs.add, 2, 3)  # a function that returns at once is fine too
    Worker([q], connection=q.connection, concurrency=8, loop=loop, timing=FAST_TIMING).work(burst=True)
    assert [Job.fetch(i, q.connection).return_value() for i in ids] == [f"j{n}" for n in range(20)]
    assert max_at_once(log, {os.getpid()})[os.getpid()] == 8    # eight at once on one thread
    assert loop.called_on == loop.turned_on == {threading.get_ident()}
    assert "RuntimeError: bad failed on the loop" in Job.fetch(failing.id, q.connection).exc_info
    stuck.refresh()
    assert stuck.get_status() == JobStatus.FAILED and "JobTimeoutError" in stuck.exc_info
    assert (tmp_path / "attempts.log.released").read_text().split() == ["stuck"]  # the loop was told, and let go
    assert plain.return_value() == 5


@pytest.mark.parametrize("how", ["signal", "another thread"])
def test_a_stop_wakes_a_driven_worker_waiting_in_its_loop(q, loop, how):
    worker = Worker([q], connection=q.connection, loop=loop, timing=SLOW_TIMERS)
    if how == "signal":  # its handler runs on the worker's own thread, while that waits in the loop
        stop = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    else:
        stop = threading.Timer(1.0, worker.request_stop)
    stop.start()
    start = time.monotonic()
    worker.work()  # waits for jobs (timers 30 s away) until the stop
    assert time.monotonic() - start < 10   # a hang bound: without the wake-up it would wait 30 s
    stop.join()


def test_a_cold_stop_lets_the_loop_release_what_it_stopped_before_the_worker_returns(q, loop, tmp_path):
    log = tmp_path / "attempts.log"
    for i in range(3):
        q.enqueue(jobs.on_loop, str(log), f"j{i}", 3600)
    worker = Worker([q], connection=q.connection, concurrency=3, loop=loop, timing=FAST_TIMING)
    stop = threading.Timer(0.5, lambda: worker.request_stop(cold=True))
    stop.start()
    worker.work()
    assert sorted((tmp_path / "attempts.log.released").read_text().split()) == ["j0", "j1", "j2"]
    assert len(attempts(log)) == 3 and q.count == 3  # every job back on its queue
    stop.join()
