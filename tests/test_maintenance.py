"""Housekeeping and the scripts behind it, state by state: wake-up tokens,
heartbeats, the reaper, expiry, promotion, replayed outcomes. A job "taken by
a worker that died" is made with the real fetch script and a deadline in the
past, which is exactly what such a worker leaves behind."""

import json
import signal
import threading
import time
import uuid
from dataclasses import replace
from queue import SimpleQueue
from datetime import timedelta

from jobqueue import Job, JobStatus, Queue, Timing, Worker
from jobqueue.backend import Backend
from jobqueue.worker.heartbeat import Heartbeat
from jobqueue.worker.maintenance import Maintenance
from jobqueue.worker.recording import finish_args, settle_record
from jobqueue.worker.execution import Outcome
from tests import jobs
from tests.conftest import FAST_TIMING, burst_to_the_end, wait_for, worker_blocked


def taken_by_a_dead_worker(backend: Backend, queue: str = "default") -> list[str]:
    """Dequeue with the real script, as a worker that then died: deadline already
    past, in a world where heartbeats have been reaching Redis all along (no
    outage grace)."""
    flat = backend.run("fetch", "dead-worker", -1, 100, "0", uuid.uuid4().hex, "0", queue)
    steady_heartbeats(backend)
    return [job_id for _, job_id, _ in taken(flat)]


def taken(flat) -> list[tuple[str, str, int]]:
    """(queue, id, attempt) of the jobs a fetch returned, in order (not the
    entries that carry their shared options)."""
    return [(flat[i].decode(), flat[i + 1].decode(), flat[i + 2]) for i in range(0, len(flat), 4)
            if flat[i] != b"\0shared"]


def steady_heartbeats(backend: Backend) -> None:
    """Someone beat just now, and beats have been steady for an hour."""
    seconds, micros = backend.connection.time()
    now = seconds + micros / 1e6
    backend.connection.hset(backend.keys.clock, mapping={"beat": now, "since": now - 3600})


def pass_now(m: Maintenance) -> None:
    """Run a maintenance pass as soon as the shared lock allows it."""
    keys = m.backend.keys
    wait_for(lambda: not m.backend.connection.exists(keys.maintenance), message="maintenance lock free")
    m.run_pass()


def test_idle_worker_wakes_on_a_token_not_by_polling(q):
    # every clock a minute long: only the wake-up token can bring the job to the worker in time
    slow_clocks = Timing(heartbeat_interval=60, heartbeat_ttl=180, maintenance_interval=60, scheduler_interval=60,
                         idle_block=60)
    w = Worker([q], connection=q.connection, timing=slow_clocks)
    thread = threading.Thread(target=w.work, daemon=True)
    thread.start()
    try:
        for n in (1, 2):  # and again once it has gone back to sleep
            wait_for(lambda: worker_blocked(q.connection), message="worker blocked, idle")
            job = q.enqueue(jobs.add, n, n)
            wait_for(lambda: job.get_status() == JobStatus.FINISHED, timeout=10, message=f"worker woken ({n})")
    finally:
        w.request_stop()
        thread.join(10)
    # a stopped worker leaves no connection blocked behind it (the block is a minute long)
    wait_for(lambda: not worker_blocked(q.connection), timeout=5, message="waker's connection closed")


def idle_worker(q, timing):
    w = Worker([q], connection=q.connection, timing=timing)
    thread = threading.Thread(target=w.work, daemon=True)
    thread.start()
    return w, thread


def test_an_idle_worker_costs_redis_its_blocking_wait_and_no_polls(own_redis):
    """Fast scheduler and block clocks, which a polling worker would answer
    with a fetch and a promote each time; a minute-long maintenance clock."""
    r = own_redis.client()
    q = Queue(connection=r)
    timing = replace(FAST_TIMING, heartbeat_interval=20, heartbeat_ttl=60, maintenance_interval=60,
                     scheduler_interval=0.1, idle_block=0.3)
    w, thread = idle_worker(q, timing)
    try:
        wait_for(lambda: worker_blocked(r), message="worker blocked, idle")
        time.sleep(0.5)  # past its start-up
        r.config_resetstat()
        time.sleep(2)
        calls = {k.removeprefix("cmdstat_"): v["calls"] for k, v in r.info("commandstats").items()}
        polls = {k: calls.get(k, 0) for k in ("evalsha", "lpop", "zrangebyscore")}
        assert polls == {"evalsha": 0, "lpop": 0, "zrangebyscore": 0}, calls
        assert 3 <= calls.get("blpop", 0) <= 10, calls  # its blocking waits, one per idle_block
        job = q.enqueue(jobs.add, 2, 2)
        wait_for(lambda: job.get_status() == JobStatus.FINISHED, timeout=10, message="worker woken")
    finally:
        w.request_stop()
        thread.join(10)


def test_an_idle_worker_runs_a_scheduled_job_when_due_without_polling_for_it(q):
    # every clock a minute long: the token the scheduling leaves must tell the worker when to look
    slow_clocks = Timing(heartbeat_interval=60, heartbeat_ttl=180, maintenance_interval=60, scheduler_interval=60,
                         idle_block=60)
    w, thread = idle_worker(q, slow_clocks)
    try:
        wait_for(lambda: worker_blocked(q.connection), message="worker blocked, idle")
        job = q.enqueue_in(timedelta(seconds=1), jobs.add, 3, 3)
        wait_for(lambda: job.get_status() == JobStatus.FINISHED, timeout=15, message="scheduled job ran")
    finally:
        w.request_stop()
        thread.join(10)


def test_a_job_whose_wake_token_was_lost_is_fetched_within_a_maintenance_interval(q, r):
    """A token dies with a worker that popped it and died before fetching: an
    idle worker asks again once a maintenance interval."""
    timing = replace(FAST_TIMING, maintenance_interval=1, scheduler_interval=60, idle_block=60)
    w, thread = idle_worker(q, timing)
    try:
        wait_for(lambda: worker_blocked(r), message="worker blocked, idle")
        wake = q.backend.keys.wake(q.name)
        (job,) = q.enqueue_many([Queue.prepare_data(jobs.add, (4, 4))], also=[("DEL", wake)])  # token gone at once
        time.sleep(0.3)
        assert worker_blocked(r) and job.get_status() == JobStatus.QUEUED  # no token came
        wait_for(lambda: job.get_status() == JobStatus.FINISHED, timeout=15, message="job fetched without a token")
    finally:
        w.request_stop()
        thread.join(10)


def test_a_token_held_by_a_paused_worker_does_not_hold_up_an_idle_one(redis_server, r, workers):
    """Blocked clients are served in order: the token of the next push goes to
    a worker blocked first, even one that is paused (SIGSTOP). Another idle
    worker still takes the job, within a maintenance interval (0.5 s here)."""
    paused = workers.start(redis_server.url)
    wait_for(lambda: worker_blocked(r), message="first worker blocked")
    paused.send_signal(signal.SIGSTOP)
    try:
        other = workers.start(redis_server.url)
        wait_for(lambda: sum(c.get("cmd") == "blpop" for c in r.client_list()) == 2, message="both blocked")
        job = Queue(connection=r).enqueue(jobs.add, 5, 5)
        wait_for(lambda: job.get_status() == JobStatus.FINISHED, timeout=15, message="the other worker took it")
        job.refresh()
        assert job.worker_name.endswith(f":{other.pid}")
    finally:
        paused.send_signal(signal.SIGCONT)


def test_at_most_one_wake_token_waits_whatever_is_enqueued(q, r):
    wake = q.backend.keys.wake(q.name)
    for i in range(3):
        q.enqueue(jobs.add, i, i)
    q.empty()
    q.enqueue(jobs.add, 1, 1)           # empty -> non-empty again
    for _ in range(3):
        q.enqueue_in(timedelta(hours=1), jobs.add, 2, 2)  # every scheduled job wakes the workers
    assert r.lrange(wake, 0, -1) == [b"1"]


def test_expired_results_are_deleted_with_their_registry_entry_by_the_next_pass(q, r):
    finished = q.enqueue(jobs.add, 1, 1, result_ttl=0)
    failed = q.enqueue(jobs.fail, failure_ttl=0)
    kept = q.enqueue(jobs.add, 2, 2, result_ttl=-1)
    canceled = q.enqueue(jobs.add, 3, 3, failure_ttl=0)
    canceled.cancel()
    canceled_for_ever = q.enqueue(jobs.add, 4, 4, failure_ttl=-1)
    canceled_for_ever.cancel()
    Worker([q], connection=r, timing=FAST_TIMING).work(burst=True)
    pass_now(Maintenance(q.backend, "cleaner", [q.name], FAST_TIMING))
    for job in (finished, failed, canceled):
        assert not r.exists(job.key), job.id
    assert q.finished_job_registry.get_job_ids() == [kept.id]
    assert q.failed_job_registry.count == 0 and q.canceled_job_registry.get_job_ids() == [canceled_for_ever.id]
    assert canceled_for_ever.get_status() == JobStatus.CANCELED
    assert kept.return_value() == 4


def test_a_dead_workers_job_goes_back_to_the_front_of_its_queue(q, r):
    job = q.enqueue(jobs.add, 1, 1)
    taken_by_a_dead_worker(q.backend)
    waiting = [q.enqueue(jobs.add, i, i).id for i in range(3)]
    pass_now(Maintenance(q.backend, "reaper", [q.name], FAST_TIMING))
    assert q.get_job_ids() == [job.id, *waiting] and q.started_job_registry.count == 0
    assert job.get_status() == JobStatus.QUEUED


def test_one_maintenance_pass_per_interval_among_all_workers(q, r):
    timing = replace(FAST_TIMING, maintenance_interval=30)
    first, second = (Maintenance(q.backend, name, [q.name], timing) for name in ("m1", "m2"))
    job = q.enqueue(jobs.add, 1, 1)
    taken_by_a_dead_worker(q.backend)
    first.run_pass()
    assert q.get_job_ids() == [job.id]  # reaped by the first pass
    taken_by_a_dead_worker(q.backend)
    second.run_pass()                   # within the interval: the other worker's pass is not repeated
    assert q.get_job_ids() == [] and job.id in q.started_job_registry
    assert 25_000 < r.pttl(q.backend.keys.maintenance) <= 30_000


def test_a_job_abandoned_more_than_three_times_fails_at_the_default(q, r):
    timing = replace(Timing(), maintenance_interval=0.05)  # default max_abandoned
    assert timing.max_abandoned == 3
    m = Maintenance(q.backend, "reaper", [q.name], timing)
    job = q.enqueue(jobs.add, 1, 1)
    for abandoned in (1, 2, 3):
        assert taken_by_a_dead_worker(q.backend) == [job.id]
        pass_now(m)
        assert q.get_job_ids() == [job.id] and int(r.hget(job.key, "abandoned")) == abandoned
    taken_by_a_dead_worker(q.backend)
    pass_now(m)
    job.refresh()
    assert job.get_status() == JobStatus.FAILED and "abandoned 4 times" in job.exc_info
    assert len(q) == 0 and job.id in q.failed_job_registry


def test_default_clocks_give_a_dead_workers_job_back_within_45_seconds(q, r):
    """deadline = start (or last heartbeat) + 30 s; the next pass (every 15 s) of any worker returns the job."""
    assert (Timing().heartbeat_ttl, Timing().maintenance_interval) == (30, 15)
    job = q.enqueue(jobs.sleep, 1.0)
    w = Worker([q], connection=r, timing=Timing())
    thread = threading.Thread(target=w.work, kwargs={"burst": True}, daemon=True)
    thread.start()
    wait_for(lambda: job.id in q.started_job_registry, message="job started")
    deadline = q.started_job_registry.get_scores()[job.id] - time.time()
    lock = r.pttl(q.backend.keys.maintenance) / 1000
    thread.join(10)
    assert 28 < deadline <= 31 and 0 < lock <= 15  # (a deadline is a whole second, rounded up)


def test_a_taken_attempts_deadline_is_a_whole_second_never_sooner_than_its_lease(q, r):
    """fetch.lua rounds the deadline up: Redis compares whole-second scores
    cheaply, and the lease is never shorter than the worker asked for."""
    job = q.enqueue(jobs.add, 1, 1)
    seconds, micros = r.time()
    q.backend.run("fetch", "a-worker", 30, 1, "0", uuid.uuid4().hex, "0", q.name)
    deadline = q.started_job_registry.get_scores()[job.id]
    assert deadline == int(deadline) and 30 <= deadline - (seconds + micros / 1e6) < 32


def test_a_heartbeat_never_resurrects_a_settled_job_and_reports_it_gone(q, r):
    job = q.enqueue(jobs.add, 1, 1)
    Worker([q], connection=r, timing=FAST_TIMING).work(burst=True)
    member = f"{job.id}:1"
    beat = Heartbeat(q.backend, "late", FAST_TIMING, SimpleQueue(), [], attempts=lambda: [(q.name, member)],
                     stats=lambda: [])
    assert beat.beat() == [member]
    assert q.started_job_registry.count == 0 and job.get_status() == JobStatus.FINISHED


def test_a_heartbeat_that_leaves_a_deadline_where_it_was_still_finds_its_attempt(q, r):
    """ZADD XX CH counts no change both for a gone member and for a deadline
    that did not move (a take's deadline is a whole second, a beat's may match
    it). Made certain here: at 1e30, seconds more or less are the same double."""
    job = q.enqueue(jobs.add, 1, 1)
    q.backend.run("fetch", "w", 60, 1, "0", "req-1", "0", q.name)
    member, keys = f"{job.id}:1", q.backend.keys
    r.zadd(keys.registry("started", q.name), {member: 1e30})
    gone = q.backend.run("heartbeat", keys.worker("w"), keys.workers, "w", 60, "1e30", keys.clock, 0.3, 0, 0,
                         q.name, member)
    assert gone == [] and job.id in q.started_job_registry


def test_a_corrupted_job_hash_is_quarantined_and_reaping_and_promoting_go_on(q, r, caplog):
    """A job key someone replaced by a string, among good ones: a dead worker's
    attempt, and a scheduled job. The pass moves it out of the way and notes
    it; every other job is reaped or promoted as if it were not there."""
    good, bad = q.enqueue(jobs.add, 1, 1), q.enqueue(jobs.add, 2, 2)
    taken_by_a_dead_worker(q.backend, q.name)
    r.delete(bad.key)
    r.set(bad.key, "not a hash")
    pass_now(Maintenance(q.backend, "reaper", [q.name], FAST_TIMING))
    assert q.get_job_ids() == [good.id] and q.started_job_registry.count == 0
    later, broken = (q.enqueue_in(timedelta(seconds=0.1), jobs.add, i, i) for i in range(2))
    r.delete(broken.key)
    r.set(broken.key, "not a hash either")
    m = Maintenance(q.backend, "promoter", [q.name], FAST_TIMING)
    wait_for(lambda: m.promote() is None and len(q) > 1, message="the good scheduled job due")
    assert q.get_job_ids() == [good.id, later.id] and q.scheduled_job_registry.count == 0
    notes = [json.loads(n) for n in r.lrange(q.backend.keys.quarantine, 0, -1)]
    assert [n["key"] for n in notes] == [bad.key, broken.key] and all("WRONGTYPE" in n["reason"] for n in notes)
    assert r.get(q.backend.keys.quarantine + ":" + bad.key) == b"not a hash"
    m.report_quarantine()
    assert sum("Quarantined a key" in message for message in caplog.messages) == 2


def test_namespace_keys_of_another_type_are_quarantined_and_nothing_stops(q, r, caplog):
    """The keys every worker shares (a queue's wake-up list, the queues and
    workers sets, the clock) replaced by other types, and a maintenance lock
    left without expiry: enqueueing, beating, reaping and running go on."""
    keys = q.backend.keys
    r.hset(keys.wake(q.name), "x", "y")
    r.set(keys.workers, "x")
    r.set(keys.maintenance, "someone")                     # no expiry: would stop every pass for ever
    dead = q.enqueue(jobs.add, 1, 1)
    taken_by_a_dead_worker(q.backend, q.name)
    r.set(keys.queues, "x")                                 # no pass could read which queues to reap
    m = Maintenance(q.backend, "reaper", [q.name], FAST_TIMING)
    m.run_pass()
    assert 0 < r.pttl(keys.maintenance) <= 500 and "has no expiry" in caplog.text
    pass_now(m)                                             # the next pass, once that lock expired
    assert q.get_job_ids() == [dead.id]                     # reaped all the same (the queues this worker serves)
    r.delete(keys.clock)
    r.rpush(keys.clock, "x")                                # (after the reaping: an unknown clock means grace)
    job = q.enqueue(jobs.add, 2, 2)
    r.set(keys.queues, "y")
    scheduled = q.enqueue_in(timedelta(seconds=0.1), jobs.add, 3, 3)
    time.sleep(0.2)  # due before the worker starts: a burst worker does not wait for what is not due
    burst_to_the_end(Worker([q], connection=r, timing=FAST_TIMING))
    assert dead.return_value() == 2 and job.return_value() == 4 and scheduled.return_value() == 6
    moved = {json.loads(n)["key"] for n in r.lrange(keys.quarantine, 0, -1)}
    assert moved == {keys.wake(q.name), keys.queues, keys.workers, keys.clock}
    assert r.type(keys.clock) == b"hash" and r.type(keys.queues) == b"set"


def test_a_due_job_is_promoted_once_into_its_queue(q, r):
    job = q.enqueue_in(timedelta(seconds=0.1), jobs.add, 1, 1)
    m = Maintenance(q.backend, "promoter", [q.name], FAST_TIMING)
    wait_for(lambda: m.promote() is None and len(q) > 0, message="job due")
    m.promote()
    assert q.get_job_ids() == [job.id] and q.scheduled_job_registry.count == 0
    assert job.get_status() == JobStatus.QUEUED


def test_outcomes_recorded_in_one_call_each_keep_their_own_ttl(q, r):
    """finish.lua works an expiry out once per TTL and call: a batch's outcomes
    share the clock reading, never each other's TTL."""
    short, kept, failing = (q.enqueue(jobs.add, 1, 1, result_ttl=100), q.enqueue(jobs.add, 1, 2, result_ttl=-1),
                            q.enqueue(jobs.add, 1, 3, failure_ttl=1000))
    q.backend.run("fetch", "w", 60, 3, "0", "req-1", "0", q.name)
    records = [settle_record(Job.fetch(short.id, r), q.name, Outcome(f"{short.id}:1", True, "2")),
               settle_record(Job.fetch(kept.id, r), q.name, Outcome(f"{kept.id}:1", True, "3")),
               settle_record(Job.fetch(failing.id, r), q.name, Outcome(f"{failing.id}:1", False, None, "boom"))]
    seconds, micros = r.time()
    now = seconds + micros / 1e6
    assert q.backend.run("finish", *finish_args(records)) == []
    finished, failed = q.finished_job_registry.key, q.failed_job_registry.key
    assert now + 99 < r.zscore(finished, short.id) < now + 101
    assert float(r.hget(short.key, "expires_at")) == r.zscore(finished, short.id)
    assert r.zscore(finished, kept.id) == float("inf") and r.hget(kept.key, "expires_at") == b"-1"
    assert now + 999 < r.zscore(failed, failing.id) < now + 1001
    assert float(r.hget(failing.key, "expires_at")) == r.zscore(failed, failing.id)
    assert [job.get_status() for job in (short, kept, failing)] == [JobStatus.FINISHED, JobStatus.FINISHED,
                                                                    JobStatus.FAILED]


def test_a_replayed_outcome_is_recorded_once(q, r):
    job = q.enqueue(jobs.add, 1, 1)
    q.backend.run("fetch", "w", 60, 1, "0", "req-1", "0", q.name)
    record = settle_record(Job.fetch(job.id, r), q.name, Outcome(f"{job.id}:1", True, "2"))
    batch = finish_args([record])
    assert q.backend.run("finish", *batch) == []  # recorded: nothing dropped
    recorded = r.hgetall(job.key)
    assert q.backend.run("finish", *batch) == []  # the reply was lost and the worker sent it again: still ours
    assert r.hgetall(job.key) == recorded        # ... and nothing was written twice
    assert job.get_status() == JobStatus.FINISHED and q.finished_job_registry.get_job_ids() == [job.id]
    assert len(q) == 0 and q.started_job_registry.count == 0


def test_a_resent_fetch_that_meets_a_corrupted_job_hash_moves_it_away_and_hands_back_the_rest(q, r):
    """The fetch's reply was lost; meanwhile one of the jobs it took had its hash
    replaced by a string. Sent again, the fetch must not fail for ever on it."""
    bad, good = q.enqueue(jobs.add, 1, 1), q.enqueue(jobs.add, 2, 2)
    q.backend.run("fetch", "w", 60, 2, "0", "req-1", "0", q.name)          # took both; the reply never came
    r.delete(bad.key)
    r.set(bad.key, "not a hash")
    flat = q.backend.run("fetch", "w", 60, 2, "0", "req-1", "1", q.name)   # sent again
    handed = [(flat[i].decode(), flat[i + 1].decode()) for i in range(0, len(flat), 4) if flat[i] != b"\0shared"]
    notes = [json.loads(note) for queue, note in handed if queue == ""]   # for the worker to log
    assert [n["key"] for n in notes] == [bad.key]
    assert [h for h in handed if h[0]] == [(q.name, good.id)] and len(q) == 0   # handed back; nothing new taken
    assert r.get(q.backend.keys.quarantine + ":" + bad.key) == b"not a hash"


def test_requeue_leaves_alone_a_job_that_is_not_failed(q):
    waiting = q.enqueue(jobs.add, 1, 1)
    assert q.failed_job_registry.requeue_many([waiting.id, "no-such-id"]) == []
    assert q.get_job_ids() == [waiting.id]  # not pushed a second time


def test_after_a_heartbeat_silence_nothing_is_reaped_for_the_grace_period(q, r):
    """Redis was down or stalled (no beat reached it for longer than two beat
    intervals): a dead-looking attempt is reaped only once the grace period
    after beats resume has passed, so live workers can beat first."""
    timing = replace(FAST_TIMING, maintenance_interval=0.05, outage_grace=1.0)
    m = Maintenance(q.backend, "reaper", [q.name], timing)
    job = q.enqueue(jobs.add, 1, 1)
    taken_by_a_dead_worker(q.backend)
    def beat(ago: float) -> None:
        seconds, micros = r.time()
        r.hset(q.backend.keys.clock, "beat", seconds + micros / 1e6 - ago)

    beat(ago=5)  # the last heartbeat that reached Redis
    pass_now(m)
    assert q.get_job_ids() == [] and job.id in q.started_job_registry   # grace: not reaped
    beat(ago=0)  # beats resume
    pass_now(m)
    assert q.get_job_ids() == []                                        # still within the grace
    time.sleep(1.0)
    beat(ago=0)
    pass_now(m)
    assert q.get_job_ids() == [job.id]                                  # grace over: reaped


def test_a_replayed_fetch_returns_the_same_attempts_and_takes_nothing_new(q, r):
    ids = [q.enqueue(jobs.add, i, i).id for i in range(4)]
    first = q.backend.run("fetch", "w", 60, 2, "0", "req-1", "0", q.name)
    again = q.backend.run("fetch", "w", 60, 2, "0", "req-1", "1", q.name)  # the reply was lost: sent again
    assert sorted(taken(again)) == sorted(taken(first)) == sorted((q.name, i, 1) for i in ids[:2])
    assert q.get_job_ids() == ids[2:] and sorted(q.started_job_registry.get_job_ids()) == sorted(ids[:2])
    later = q.backend.run("fetch", "w", 60, 2, "0", "req-2", "0", q.name)  # a new call takes new jobs
    assert [job_id for _, job_id, _ in taken(later)] == ids[2:]


def test_fenced_writes_apply_once_and_only_for_the_current_attempt(q, r):
    """What the worker sends for Job.write_on_success (scripts/fence.lua)."""
    from jobqueue.scripts import fenced
    current, superseded = q.enqueue(jobs.add, 1, 1), q.enqueue(jobs.add, 2, 2)
    q.backend.run("fetch", "w", 60, 2, "0", "req", "0", q.name)
    entries = [[q.name, current.id, 1, ["count", "current"]], [q.name, superseded.id, 7, ["count", "stale"]]]
    argv = [*q.backend.run.prefixes, json.dumps(entries)]
    script = fenced(jobs.COUNT)
    script(r, *argv)
    script(r, *argv)  # the round trip is sent again: nothing twice
    assert r.hgetall("count") == {b"current": b"1"}


def test_a_superseded_attempts_outcome_is_dropped_and_reported(q, r):
    """Attempt 1's worker died (or so it seemed); attempt 2 runs; attempt 1's late outcome changes nothing."""
    job = q.enqueue(jobs.add, 1, 1)
    taken_by_a_dead_worker(q.backend)
    pass_now(Maintenance(q.backend, "reaper", [q.name], FAST_TIMING))
    q.backend.run("fetch", "w2", 60, 1, "0", "req-2", "0", q.name)            # attempt 2
    before = r.hgetall(job.key)
    late = settle_record(Job.fetch(job.id, r), q.name, Outcome(f"{job.id}:1", False, None, "late failure"))
    late["a"] = 1
    assert q.backend.run("finish", *finish_args([late])) == [job.id.encode()]   # dropped, and said so
    assert r.hgetall(job.key) == before and job.get_status() == JobStatus.STARTED
    assert q.started_job_registry.get_job_ids() == [job.id] and q.failed_job_registry.count == 0
