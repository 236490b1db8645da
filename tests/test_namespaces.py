"""A worker whose queues live in several namespaces, here on two Redis
servers: one lane each (jobqueue/worker/lane.py). One lane's Redis cut off,
stalling or answering with errors holds up no other lane's work and reaps
none of its jobs."""

import threading
import time
from contextlib import contextmanager

import pytest
import redis

from jobqueue import JobStatus, Queue, Timing, Worker
from jobqueue.connection import from_url
from jobqueue.worker import lane as lane_module
from tests import jobs
from tests.conftest import FAST_TIMING, wait_for
from tests.forwarder import Forwarder
from tests.invariants import assert_one_outcome_each, attempts


@contextmanager
def working(worker: Worker, link: Forwarder):
    """``worker`` working on a thread of its own (yielded); on the way out it
    is asked to stop and waited for, and ``link`` is closed."""
    thread = threading.Thread(target=worker.work, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        worker.request_stop()
        thread.join(15)
        link.close()


def refusing(own_redis) -> tuple[redis.Redis, object, object]:
    """(a client of an admin user of its own, make the default user's scripts
    refused with NOPERM, allow them again): a Redis that answers, with errors."""
    admin = own_redis.client()
    admin.acl_setuser("admin", enabled=True, passwords=["+pw"], categories=["+@all"], keys=["*"], channels=["*"])
    admin = redis.Redis(port=own_redis.port, username="admin", password="pw")
    return (admin, lambda: admin.acl_setuser("default", enabled=True, nopass=True, categories=["-@scripting"]),
            lambda: admin.acl_setuser("default", enabled=True, nopass=True, categories=["+@all"]))


@pytest.mark.parametrize("trouble", ["cut", "stall", "refusing"])
def test_one_namespace_cut_off_or_stalled_holds_up_no_other(r, own_redis, tmp_path, trouble):
    link = Forwarder(own_redis.port)
    cut_off = Queue("a", connection=from_url(link.url()), prefix="{a}:")   # through the link the test breaks
    if trouble == "refusing":
        direct, break_it, heal = refusing(own_redis)
    else:
        direct, break_it, heal = own_redis.client(), getattr(link, trouble), link.heal
    cut_off_direct = Queue("a", connection=direct, prefix="{a}:")
    healthy = Queue("b", connection=r, prefix="{b}:")
    log = tmp_path / "attempts.log"
    worker = Worker([cut_off, healthy], timing=FAST_TIMING, concurrency=4, name=f"lanes-{trouble}")
    # another worker of the healthy namespace keeps its clock beating, so the reaper there is not in an
    # outage's grace: an attempt whose heartbeat stopped would be reaped
    bystander = Worker([Queue("other", connection=r, prefix="{b}:")], timing=FAST_TIMING, name=f"bystander-{trouble}")
    threads = [threading.Thread(target=w.work, daemon=True) for w in (worker, bystander)]
    for thread in threads:
        thread.start()
    try:
        first = [q.enqueue(jobs.tracked, str(log), f"first-{q.name}").id for q in (cut_off_direct, healthy)]
        wait_for(lambda: all(q.finished_job_registry.count == 1 for q in (cut_off_direct, healthy)),
                 message="both lanes work")
        break_it()
        # longer than the heartbeat TTL (1.5 s): only the healthy lane's own heartbeat keeps it from being reaped
        long = healthy.enqueue(jobs.tracked, str(log), "long", 2.5).id
        quick = [healthy.enqueue(jobs.tracked, str(log), f"quick{i}").id for i in range(5)]
        waiting = [cut_off_direct.enqueue(jobs.tracked, str(log), f"waiting{i}").id for i in range(3)]
        wait_for(lambda: all(healthy.fetch_job(i).get_status() == JobStatus.FINISHED for i in [long, *quick]),
                 timeout=30, message="the healthy lane's jobs done while the other is broken")
        assert all(cut_off_direct.fetch_job(i).get_status() == JobStatus.QUEUED for i in waiting)
        heal()
        wait_for(lambda: all(cut_off_direct.fetch_job(i).get_status() == JobStatus.FINISHED for i in waiting),
                 timeout=30, message="the other lane's jobs done once it is back")
    finally:
        for w, thread in zip((worker, bystander), threads):
            w.request_stop()
            thread.join(15)
        link.close()
    assert not any(thread.is_alive() for thread in threads)
    assert_one_outcome_each(healthy, [first[1], long, *quick])
    assert_one_outcome_each(cut_off_direct, [first[0], *waiting])
    assert sorted(a.tag for a in attempts(log)) == sorted(
        ["first-a", "first-b", "long", *(f"quick{i}" for i in range(5)), *(f"waiting{i}" for i in range(3))])
    assert all(a.attempt == 1 and a.how == "ok" for a in attempts(log))   # nothing reaped, nothing run twice


def test_a_namespace_away_when_the_worker_starts_holds_up_no_other_and_joins_later(r, own_redis, tmp_path):
    link = Forwarder(own_redis.port)
    away = Queue("a", connection=from_url(link.url()), prefix="{a}:")
    away_direct = Queue("a", connection=own_redis.client(), prefix="{a}:")
    healthy = Queue("b", connection=r, prefix="{b}:")
    log = tmp_path / "attempts.log"
    link.cut()
    waiting = [away_direct.enqueue(jobs.tracked, str(log), f"waiting{i}").id for i in range(3)]
    done = [healthy.enqueue(jobs.tracked, str(log), f"done{i}").id for i in range(3)]
    worker = Worker([away, healthy], timing=FAST_TIMING, concurrency=2, name="late-lane")
    with working(worker, link) as thread:
        wait_for(lambda: all(healthy.fetch_job(i).get_status() == JobStatus.FINISHED for i in done),
                 timeout=20, message="the healthy namespace's jobs done while the other is away")
        assert [w.name for w in Worker.all(queue=healthy)] == ["late-lane"] and Worker.all(queue=away_direct) == []
        assert all(away_direct.fetch_job(i).get_status() == JobStatus.QUEUED for i in waiting)
        link.heal()
        wait_for(lambda: all(away_direct.fetch_job(i).get_status() == JobStatus.FINISHED for i in waiting),
                 timeout=30, message="the other namespace's jobs done once it answers")
        wait_for(lambda: [w.name for w in Worker.all(queue=away_direct)] == ["late-lane"],
                 message="registered there too, by the lane's next heartbeat")
    assert not thread.is_alive()
    assert_one_outcome_each(healthy, done)
    assert_one_outcome_each(away_direct, waiting)


def test_a_stalled_namespace_holds_up_the_worker_once_not_at_every_try(r, own_redis):
    """Every call to a stalled Redis blocks the worker's loop for the socket
    timeout: the lane tries again only once its heartbeat (a thread of its
    own) has had an answer, so the other lanes lose that time once."""
    link = Forwarder(own_redis.port)
    stalled = Queue("a", connection=from_url(link.url(query="socket_timeout=0.5")), prefix="{a}:")
    healthy = Queue("b", connection=r, prefix="{b}:")
    worker = Worker([stalled, healthy], timing=FAST_TIMING, concurrency=2, name="stall-once")
    lane, failures = worker.lanes[0], []
    real = lane.failed
    lane.failed = lambda exc, running: failures.append(type(exc).__name__) or real(exc, running)
    with working(worker, link):
        wait_for(lambda: [w.name for w in Worker.all(queue=healthy)] == ["stall-once"], message="worker up")
        time.sleep(0.5)
        link.stall()
        time.sleep(4)   # eight socket timeouts, many backoff periods
        during = list(failures)
        done = healthy.enqueue(jobs.add, 2, 2)
        wait_for(lambda: done.get_status() == JobStatus.FINISHED, timeout=10, message="the healthy lane works")
        link.heal()
        later = Queue("a", connection=own_redis.client(), prefix="{a}:").enqueue(jobs.add, 1, 1)
        wait_for(lambda: later.get_status() == JobStatus.FINISHED, timeout=20, message="the stalled lane is back")
    assert during == ["TimeoutError"], during


def test_namespaces_of_one_redis_that_stalled_together_go_on_as_soon_as_it_answers(own_redis, tmp_path):
    """Every lane waits for its heartbeat, and nothing wakes the loop (no
    healthy lane, no enqueue: only outcomes to record): it looks on its own,
    every scheduler interval."""
    link = Forwarder(own_redis.port)
    client = from_url(link.url(query="socket_timeout=0.5"))
    queues = [Queue("q", connection=client, prefix=p) for p in ("{s1}:", "{s2}:")]
    log = tmp_path / "attempts.log"
    direct = [Queue("q", connection=own_redis.client(), prefix=q.backend.keys.prefix) for q in queues]
    running = [q.enqueue(jobs.tracked, str(log), q.backend.keys.prefix, 1.0) for q in direct]
    worker = Worker(queues, timing=FAST_TIMING, concurrency=2, name="one-redis")
    with working(worker, link):
        wait_for(lambda: len(attempts(log)) == 2, message="both jobs running")
        link.stall()   # they end meanwhile: their outcomes wait
        time.sleep(2)
        link.heal()
        wait_for(lambda: all(j.get_status() == JobStatus.FINISHED for j in running), timeout=15,
                 message="both outcomes recorded well before HEARTBEAT_WAIT (30 s)")
    assert all(a.attempt == 1 and a.how == "ok" for a in attempts(log))


def test_a_failing_lane_whose_heartbeat_never_answers_tries_again_after_the_cap(r, own_redis, monkeypatch):
    """A lane waits for its heartbeat's answer before calling again, but not
    for ever: HEARTBEAT_WAIT (30 s; 1 s here) on, it calls anyway."""
    monkeypatch.setattr(lane_module, "HEARTBEAT_WAIT", 1.0)
    link = Forwarder(own_redis.port)
    cut = Queue("a", connection=from_url(link.url(query="socket_timeout=0.5")), prefix="{a}:")
    healthy = Queue("b", connection=r, prefix="{b}:")
    worker = Worker([cut, healthy], timing=FAST_TIMING, concurrency=2, name="deaf-heartbeat")
    with working(worker, link):
        wait_for(lambda: [w.name for w in Worker.all(queue=healthy)] == ["deaf-heartbeat"], message="worker up")
        lane = worker.lanes[0]
        lane.heartbeat.answered = lambda: None   # its answers never reach the lane
        link.cut()
        wait_for(lambda: lane.outage.since is not None, message="the lane failing")
        link.heal()
        job = Queue("a", connection=own_redis.client(), prefix="{a}:").enqueue(jobs.add, 1, 1)
        wait_for(lambda: job.get_status() == JobStatus.FINISHED, timeout=15, message="the lane called again")


def test_jobs_of_one_id_in_two_namespaces_run_at_once_each_with_its_own_outcome(r, tmp_path):
    """A worker of two namespaces may hold two jobs of one id at once: each
    attempt is its own (named by its namespace too), and so is each outcome."""
    log = tmp_path / "runs.log"
    queues = [Queue("twins", connection=r, prefix=p) for p in ("{twin-a}:", "{twin-b}:")]
    twins = [q.enqueue(jobs.record, str(log), q.backend.keys.prefix, 0.5, job_id="same") for q in queues]
    Worker(queues, timing=FAST_TIMING, concurrency=2, name="twins").work(burst=True)
    starts = [line for line in log.read_text().splitlines() if line.startswith("start")]
    assert len(starts) == 2   # both ran, once each (at once: two slots, one turn)
    assert [job.return_value() for job in twins] == ["{twin-a}:", "{twin-b}:"]
    assert all(q.finished_job_registry.get_job_ids() == ["same"] and q.started_job_registry.count == 0
               for q in queues)



def test_jobs_a_lane_took_are_kept_alive_while_another_lane_holds_up_the_same_turn(r, own_redis, tmp_path):
    """A turn asks the healthy lane first and takes a job, then the other
    lane's call hangs (its Redis busy in DEBUG SLEEP past the heartbeat TTL):
    the job taken is already running, so its own lane's heartbeat keeps it
    alive; it is never reaped nor run twice."""
    quiet = Timing(heartbeat_interval=0.3, heartbeat_ttl=1.5, maintenance_interval=60, scheduler_interval=60,
                   idle_block=60)  # no timer brings a turn: only the job does
    busy = Queue("a", connection=own_redis.client(), prefix="{a}:")
    healthy = Queue("b", connection=r, prefix="{b}:")
    log = tmp_path / "attempts.log"
    worker = Worker([busy, healthy], timing=quiet, concurrency=2, name="turn-held")
    # another worker of the healthy namespace: its reaper would return an attempt nobody keeps alive
    bystander = Worker([Queue("other", connection=r, prefix="{b}:")], timing=FAST_TIMING, name="turn-bystander")
    threads = [threading.Thread(target=w.work, daemon=True) for w in (worker, bystander)]
    for thread in threads:
        thread.start()
    sleeper = threading.Thread(target=lambda: own_redis.client().execute_command("DEBUG", "SLEEP", "3"))
    try:
        wait_for(lambda: all(lane.waker is not None and lane.waker.armed.is_set() for lane in worker.lanes),
                 message="the worker idle on both lanes")
        worker._turns = 1                              # the next turn asks the healthy lane first,
        worker.lanes[0].maintenance.next_promote = 0   # then calls the busy one (its scheduler look is due)
        sleeper.start()
        time.sleep(0.2)                                # (the busy Redis is asleep now)
        job = healthy.enqueue(jobs.tracked, str(log), "taken-first", 0.1)
        wait_for(lambda: job.get_status() == JobStatus.FINISHED, timeout=30, message="the job done")
    finally:
        sleeper.join(10)
        for w, thread in zip((worker, bystander), threads):
            w.request_stop()
            thread.join(15)
    assert_one_outcome_each(healthy, [job.id])
    assert [(a.tag, a.attempt, a.how) for a in attempts(log)] == [("taken-first", 1, "ok")]
