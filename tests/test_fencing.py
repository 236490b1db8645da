"""Partial failures: a worker paused, cut off or stalled past its deadline that
comes back, a worker whose clock is off, Redis stalling or restarting, a
reply lost mid-call. Real worker processes, a real redis-server, a real TCP
relay (tests.forwarder) and a real clock shift (libfaketime). Each test
checks invariants (tests.invariants), not only a happy ending."""

import os
import signal
import socket
import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import libfaketime
import pytest
import redis

from jobqueue import Job, JobStatus, Queue, Worker
from jobqueue.connection import from_url
from tests import jobs
from tests.conftest import FAST_TIMING, wait_for, worker_blocked
from tests.forwarder import Forwarder
from tests.invariants import assert_each_id_once, assert_one_outcome_each, attempts, max_at_once

FAKETIME_SO = Path(libfaketime.__file__).parent / "vendor/libfaketime/src/libfaketime.so.1"


def clock_shifted(offset: str) -> dict:
    """Environment for a process whose wall clock is off by ``offset`` ('+120s')."""
    return {"LD_PRELOAD": str(FAKETIME_SO), "FAKETIME": offset, "DONT_FAKE_MONOTONIC": "1"}


def taken_by(r, job_id: str, proc, attempt: int) -> bool:
    job = Job.fetch(job_id, r)
    return (job.get_status(refresh=False) == JobStatus.STARTED and job.attempt == attempt
            and (job.worker_name or "").endswith(f":{proc.pid}"))


def redis_asleep(port: int, seconds: float) -> None:
    """DEBUG SLEEP on a connection of its own; returns once Redis is seen not answering."""
    sleeper = socket.create_connection(("127.0.0.1", port))
    sleeper.sendall(f"DEBUG SLEEP {seconds}\r\n".encode())
    probe = socket.create_connection(("127.0.0.1", port))
    probe.settimeout(0.05)
    deadline = time.monotonic() + 2
    try:
        while time.monotonic() < deadline:
            probe.sendall(b"PING\r\n")
            try:
                probe.recv(64)   # answered: the sleep has not begun yet
                time.sleep(0.01)
            except TimeoutError:
                return           # asleep (the PING is answered when it wakes)
        raise AssertionError("Redis never went to sleep")
    finally:
        threading.Timer(seconds + 2, lambda: (sleeper.close(), probe.close())).start()


@pytest.mark.parametrize("mode", ["thread", "fork"])
def test_a_paused_worker_comes_back_to_find_its_job_taken_and_its_outcome_dropped(redis_server, r, workers,
                                                                                  tmp_path, mode):
    q, log = Queue(connection=r), tmp_path / "attempts.log"
    job = q.enqueue(jobs.tracked, str(log), "j", 2.0)
    args = ["--fork"] if mode == "fork" else []
    paused = workers.start(redis_server.url, *args)
    wait_for(lambda: taken_by(r, job.id, paused, 1), message="first attempt started")
    paused.send_signal(signal.SIGSTOP)
    other = workers.start(redis_server.url, *args)
    # (generous waits: a loaded machine starts a worker, and forks a horse, slowly)
    wait_for(lambda: taken_by(r, job.id, other, 2), timeout=30, message="job reaped and taken again")
    paused.send_signal(signal.SIGCONT)
    wait_for(lambda: "no longer current" in workers.output(paused), timeout=30, message="the paused worker told")
    wait_for(lambda: job.get_status() == JobStatus.FINISHED, timeout=30, message="second attempt finished")
    assert_one_outcome_each(q, [job.id])
    job.refresh()
    assert job.attempt == 2 and job.worker_name.endswith(f":{other.pid}")
    # the second attempt's outcome stands, whatever the first one does later
    time.sleep(1)
    assert job.get_status() == JobStatus.FINISHED and Job.fetch(job.id, r).attempt == 2
    assert_one_outcome_each(q, [job.id])


def test_a_worker_stalled_on_its_link_past_its_deadline_has_its_outcome_dropped(redis_server, r, workers, tmp_path):
    q, log = Queue(connection=r), tmp_path / "attempts.log"
    job = q.enqueue(jobs.tracked, str(log), "j", 6.0, on_success=jobs.count_success)  # outlasts a slow reap
    link = Forwarder(redis_server.port)
    try:
        cut_off = workers.start(link.url())
        wait_for(lambda: taken_by(r, job.id, cut_off, 1), message="first attempt started")
        link.stall()
        other = workers.start(redis_server.url)
        wait_for(lambda: taken_by(r, job.id, other, 2), message="job reaped and taken again")
        link.heal()
        wait_for(lambda: "no longer current" in workers.output(cut_off), message="the stalled worker told")
        wait_for(lambda: job.get_status() == JobStatus.FINISHED, message="second attempt finished")
        assert_one_outcome_each(q, [job.id])
        # the stalled attempt was stopped, not left to finish
        wait_for(lambda: any(a.attempt == 1 and a.how == "AttemptSuperseded" for a in attempts(log)),
                 message="first attempt stopped")
        assert Job.fetch(job.id, r).attempt == 2
        time.sleep(0.5)
        assert r.get(f"success-calls:{job.id}") == b"1"   # the superseded attempt's on_success is not called
    finally:
        link.close()


def test_a_superseded_attempt_holds_its_slot_until_its_code_returns(redis_server, r, workers, tmp_path):
    """-c 1: the stale attempt sleeps in C where no stop lands; the worker must
    not take the job (or any other) again until that code has returned."""
    q, log = Queue(connection=r), tmp_path / "attempts.log"
    job = q.enqueue(jobs.tracked, str(log), "j", 5.0, None)  # long enough to be reaped in, on a loaded machine too
    worker = workers.start(redis_server.url, "-c", "1")
    reaper = workers.start(redis_server.url, "elsewhere")   # another queue: only its maintenance matters
    wait_for(lambda: taken_by(r, job.id, worker, 1) and attempts(log), message="first attempt running")
    worker.send_signal(signal.SIGSTOP)
    wait_for(lambda: Job.fetch(job.id, r).get_status(refresh=False) == JobStatus.QUEUED, message="job reaped")
    worker.send_signal(signal.SIGCONT)
    wait_for(lambda: Job.fetch(job.id, r).attempt >= 2, timeout=20, message="the job taken again")
    assert [a.how for a in attempts(log)][:1] == ["AttemptSuperseded"]  # not before the stale code had returned
    wait_for(lambda: job.get_status() == JobStatus.FINISHED, timeout=20, message="job finished")
    assert_one_outcome_each(q, [job.id])
    assert max_at_once(log, {worker.pid, reaper.pid}) == {worker.pid: 1}
    runs = attempts(log)
    assert [(a.attempt, a.how) for a in runs] == [(1, "AttemptSuperseded"), (2, "ok")]


@pytest.mark.parametrize("offsets", [("+120s", "-120s")])
def test_workers_whose_clocks_are_two_minutes_off_change_nothing(redis_server, r, workers, tmp_path, offsets):
    q, log = Queue(connection=r), tmp_path / "attempts.log"
    # a TTL of 5 s: a loaded machine's late beat is not what this test is about; a clock 120 s off still is
    steady = {"JOBQUEUE_HEARTBEAT_TTL": "5"}
    procs = [workers.start(redis_server.url, "-c", "2", env=steady)]
    # the shifted workers do most maintenance passes: judging others by their own clock would show
    procs += [workers.start(redis_server.url, "-c", "2",
                            env={**steady, **clock_shifted(o), "JOBQUEUE_MAINTENANCE_INTERVAL": "0.1"})
              for o in offsets]
    mine = {p.pid for p in procs}

    def births_now() -> dict:
        return {w.name: w.birth for w in Worker.all(r) if w.pid in mine}

    wait_for(lambda: len(births_now()) == 3, message="workers registered")
    births = births_now()
    seconds, _ = r.time()
    due = q.enqueue_in(timedelta(seconds=1.5), jobs.tracked, str(log), "due", 0)
    ids = [q.enqueue(jobs.tracked, str(log), f"j{i}", 0.8).id for i in range(12)]
    wait_for(lambda: all(Job.fetch(i, r).get_status(refresh=False) == JobStatus.FINISHED for i in ids + [due.id]),
             timeout=30, message="all jobs finished")
    assert_one_outcome_each(q, ids + [due.id])
    assert sorted(a.tag for a in attempts(log)) == sorted(["due"] + [f"j{i}" for i in range(12)])  # each ran once
    assert all(Job.fetch(i, r).attempt == 1 for i in ids)
    assert max(max_at_once(log, {p.pid for p in procs}).values()) <= 2
    started = Job.fetch(due.id, r).started_at.timestamp()
    assert started >= seconds + 1.5 - 0.01, "a scheduled job ran before it was due on Redis's clock"
    for proc in procs:
        assert "Requeued" not in workers.output(proc)
    assert births_now() == births   # nobody judged another worker dead
    # the shift was real: the shifted workers' log clocks are two minutes off
    for proc, offset in zip(procs[1:], offsets):
        stamp = workers.output(proc).split()[0]
        h, m, s = (int(x) for x in stamp.split(":"))
        gap = (h * 3600 + m * 60 + s - (seconds % 86400)) % 86400
        expected = int(offset[:-1]) % 86400
        assert min(abs(gap - expected), 86400 - abs(gap - expected)) < 30, (stamp, offset)


def test_an_enqueue_whose_reply_is_lost_is_enqueued_once(redis_server, r):
    """The request reaches Redis late (a stalled link): the client times out
    and sends it again; both arrive, one job is queued."""
    link = Forwarder(redis_server.port)
    try:
        r.config_resetstat()
        for client in (from_url(link.url(query="socket_timeout=0.3")),
                       redis.Redis(port=link.port, socket_timeout=0.3)):   # redis-py's own retries, too
            r.flushall()
            q = Queue(connection=client)
            client.ping()  # connected: the request itself is what stalls, not the handshake
            link.stall()
            threading.Timer(0.8, link.heal).start()
            job = q.enqueue(jobs.add, 1, 1)
            wait_for(lambda: r.llen(q.key) >= 1, message="enqueued")
            time.sleep(0.3)  # any late copy of the request has arrived by now
            assert Queue(connection=r).get_job_ids() == [job.id]
            calls = r.info("commandstats")["cmdstat_evalsha"]["calls"]
            assert calls >= 2, "the request was never sent twice: no replay happened"
            r.config_resetstat()
    finally:
        link.close()


def test_jobs_run_once_each_through_redis_stalls_and_a_link_that_keeps_dropping(redis_server, r, workers, tmp_path):
    """Replays of fetch and finish after lost replies: every job runs once and is recorded once."""
    q, log = Queue(connection=r), tmp_path / "attempts.log"
    ids = [q.enqueue(jobs.tracked, str(log), f"j{i}", 0.005).id for i in range(300)]
    link = Forwarder(redis_server.port)
    try:
        flaky = workers.start(link.url(query="socket_timeout=0.3"), "-c", "4")
        stalled = workers.start(redis_server.url + "?socket_timeout=0.3", "-c", "4")
        # and one in this process on a plain redis-py client, which resends timed-out calls by itself
        client = redis.Redis(port=redis_server.port, socket_timeout=0.3)
        inside = Worker([Queue(connection=client)], connection=client, concurrency=4, timing=FAST_TIMING,
                        name=f"inside-{os.getpid()}-stalls")
        thread = threading.Thread(target=inside.work, daemon=True)
        thread.start()
        wait_for(lambda: len(attempts(log)) > 20, message="work under way")
        redis_asleep(redis_server.port, 0.5)
        for _ in range(8):
            time.sleep(0.15)
            link.cut()
            time.sleep(0.05)
            link.heal()
            assert_each_id_once(q)
        redis_asleep(redis_server.port, 0.5)
        wait_for(lambda: r.zcard(q.backend.keys.registry("finished", q.name)) == len(ids), timeout=30,
                 message="all jobs finished")
        assert_one_outcome_each(q, ids)
        runs = attempts(log)
        twice = [(a.tag, a.pid, a.attempt, a.how) for a in runs if sum(b.tag == a.tag for b in runs) > 1]
        assert sorted(a.tag for a in runs) == sorted(f"j{i}" for i in range(300)), f"ran twice or never: {twice}"
        # no stall lasted past a deadline, and no resent fetch left attempts behind to be reaped
        assert {a.attempt for a in runs} == {1}
        assert max(max_at_once(log, {flaky.pid, stalled.pid, os.getpid()}).values()) <= 4
    finally:
        link.close()
        inside.request_stop()
        thread.join(10)
        assert not thread.is_alive(), "the in-process worker did not stop"


def test_a_redis_restart_longer_than_the_heartbeat_ttl_reaps_no_live_workers_job(own_redis, workers, tmp_path):
    r = own_redis.client()
    q, log = Queue(connection=r), tmp_path / "attempts.log"
    job = q.enqueue(jobs.tracked, str(log), "j", 5.0)
    worker = workers.start(own_redis.url)
    idle = workers.start(own_redis.url, "elsewhere")
    wait_for(lambda: taken_by(r, job.id, worker, 1), message="job started")
    own_redis.kill()
    time.sleep(2.5)  # heartbeat TTL is 1.5 s
    own_redis.start()  # the same port, data and fixture (which kills it at the end)
    r = own_redis.client()
    wait_for(lambda: Job.fetch(job.id, r).get_status(refresh=False) == JobStatus.FINISHED, timeout=20,
             message="job finished")
    assert_one_outcome_each(Queue(connection=r), [job.id])
    assert [(a.attempt, a.how) for a in attempts(log)] == [(1, "ok")]
    for proc in (worker, idle):
        assert "Requeued" not in workers.output(proc)
    assert "grace" in workers.output(worker) + workers.output(idle)


def test_a_worker_cut_off_past_its_ttl_comes_back_registered_whole(redis_server, r, workers):
    link = Forwarder(redis_server.port)
    try:
        worker = workers.start(link.url(), "-c", "3", "high", "low")
        wait_for(lambda: Worker.all(r), message="worker registered")
        (before,) = Worker.all(r)
        link.cut()
        wait_for(lambda: not Worker.all(r), timeout=10, message="worker entry expired")
        link.heal()
        wait_for(lambda: Worker.all(r), timeout=10, message="worker registered again")
        (after,) = Worker.all(r)
        assert (after.name, after.pid, after.hostname, after.queues, after.concurrency, after.mode) == (
            before.name, worker.pid, before.hostname, ["high", "low"], 3, "thread")
        assert after.birth and after.birth >= before.birth
    finally:
        link.close()


def test_a_live_worker_taken_out_of_the_workers_set_is_back_at_its_next_beat(redis_server, r, workers):
    """Someone emptied the set (or a pass took a paused worker for dead while
    its entry lived on): the next beat adds it again, registration untouched."""
    workers.start(redis_server.url, "-c", "2")
    wait_for(lambda: Worker.all(r), message="worker registered")
    (before,) = Worker.all(r)
    r.delete("jobqueue:workers")
    wait_for(lambda: r.sismember("jobqueue:workers", before.name), timeout=5, message="back in the set")
    (after,) = Worker.all(r)
    assert after.birth == before.birth                 # the same registration, not a new one


def test_a_slow_or_hanging_on_failure_callback_stops_no_heartbeat(redis_server, r, workers, tmp_path):
    q, log = Queue(connection=r), tmp_path / "attempts.log"
    failing = q.enqueue(jobs.fail, on_failure=jobs.slow_failure)
    long_jobs = [q.enqueue(jobs.tracked, str(log), f"long{i}", 3.0).id for i in range(2)]
    worker = workers.start(redis_server.url, "-c", "3", env={"JOBQUEUE_CALLBACK_TIMEOUT": "1"})
    wait_for(lambda: failing.get_status() == JobStatus.FAILED, message="failure recorded, slow callback running")
    time.sleep(2.0)  # past the worker entry's TTL: only beats keep it
    (seen,) = Worker.all(r)
    seconds, micros = r.time()
    now = seconds + micros / 1e6
    assert now - Job.fetch(long_jobs[0], r).started_at.timestamp() > 1.9
    assert now - datetime.fromisoformat(seen.last_heartbeat.replace("Z", "+00:00")).timestamp() < 1.0
    wait_for(lambda: all(Job.fetch(i, r).get_status(refresh=False) == JobStatus.FINISHED for i in long_jobs),
             timeout=20, message="long jobs finished")
    assert_one_outcome_each(q, long_jobs)
    assert [a.attempt for a in attempts(log)] == [1, 1]      # never reaped while the callback ran
    assert failing.get_status() == JobStatus.FAILED
    wait_for(lambda: "still running after 1 s; no longer waited for" in workers.output(worker),
             message="hanging callback logged")
    wait_for(lambda: r.get(f"callback:{failing.id}") == b"slow callback done", message="callback ran")


def test_canceling_a_running_job_stops_it_and_drops_its_outcome(redis_server, r, workers, tmp_path):
    q, log = Queue(connection=r), tmp_path / "attempts.log"
    job = q.enqueue(jobs.tracked, str(log), "j", 10.0)
    worker = workers.start(redis_server.url)
    wait_for(lambda: taken_by(r, job.id, worker, 1), message="job started")
    job.cancel()
    wait_for(lambda: [a.how for a in attempts(log)] == ["AttemptSuperseded"], message="attempt stopped")
    assert job.get_status() == JobStatus.CANCELED and job.id in q.canceled_job_registry
    assert r.hget("writes", "j") is None and q.started_job_registry.count == 0
    assert "no longer current" in workers.output(worker)


def test_the_waker_and_the_heartbeat_survive_any_exception(redis_server, r, caplog):
    """Each background thread meets an error that is not Redis's (here: raised
    on its first request) and must log it and carry on."""
    failed: set[str] = set()

    class Faulty(redis.Connection):
        def send_packed_command(self, command, check_health=True):
            thread = threading.current_thread().name
            if thread in ("waker", "heartbeat") and thread not in failed:
                failed.add(thread)
                raise RuntimeError(f"injected fault in the {thread} thread")
            return super().send_packed_command(command, check_health)

    kwargs = r.connection_pool.connection_kwargs
    client = redis.Redis(connection_pool=redis.ConnectionPool(connection_class=Faulty, **kwargs))
    q = Queue(connection=client)
    # minute-long clocks but the heartbeat's: only the waker can bring the job in time
    timing = replace(FAST_TIMING, maintenance_interval=60, scheduler_interval=60, idle_block=60)
    worker = Worker([q], connection=client, timing=timing, name=f"inside-{os.getpid()}-faults")
    thread = threading.Thread(target=worker.work, daemon=True)
    thread.start()
    try:
        wait_for(lambda: failed == {"waker", "heartbeat"}, message="both threads hit")
        beats = worker.heartbeat.beats
        wait_for(lambda: worker.heartbeat.beats > beats, message="heartbeat goes on")
        wait_for(lambda: worker_blocked(r), message="waker blocked again")
        job = q.enqueue(jobs.add, 1, 1)
        wait_for(lambda: job.get_status() == JobStatus.FINISHED, timeout=10, message="waker still wakes the worker")
        assert worker.heartbeat.is_alive() and worker._waker.is_alive()
        text = caplog.text
        assert "injected fault in the waker thread" in text and "injected fault in the heartbeat thread" in text
    finally:
        worker.request_stop()
        thread.join(10)
        assert not thread.is_alive(), "the in-process worker did not stop"
        client.close()


def test_an_outcome_waiting_for_its_round_trip_is_kept_alive(redis_server, r, workers, tmp_path):
    """The round trip that would record the outcome is stalled past the
    heartbeat TTL (the heartbeat's own link is fine): the attempt must not be
    reaped and run again meanwhile."""
    from jobqueue.backend import Backend
    q, log = Queue(connection=r), tmp_path / "attempts.log"
    job = q.enqueue(jobs.tracked, str(log), "j", 0.5)
    reaper = workers.start(redis_server.url, "elsewhere")   # another queue: only its maintenance matters
    link = Forwarder(redis_server.port)
    worker = Worker([q], connection=r, timing=FAST_TIMING, name=f"inside-{os.getpid()}-waiting")
    worker.round_trip.backend = Backend(redis.Redis(port=link.port), q.backend.keys.prefix)
    thread = threading.Thread(target=worker.work, daemon=True)
    try:
        thread.start()
        wait_for(lambda: attempts(log), message="our worker runs the job")  # its fetch's reply has arrived
        link.stall()
        wait_for(lambda: any(a.how == "ok" for a in attempts(log)), message="job done, outcome waiting")
        time.sleep(2.5)  # past the TTL
        link.heal()
        wait_for(lambda: job.get_status() == JobStatus.FINISHED, message="outcome recorded")
        assert [(a.attempt, a.how) for a in attempts(log)] == [(1, "ok")]
        assert "Requeued" not in workers.output(reaper)
    finally:
        link.heal()  # whatever is pending can be recorded, so the worker stops at once
        worker.request_stop()
        thread.join(15)
        link.close()
        assert not thread.is_alive(), "the in-process worker did not stop"
