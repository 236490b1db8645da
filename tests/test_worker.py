"""The worker in this process: results, failures, retries, scheduling,
timeouts in both modes, bad input. (Process-level scenarios: test_resilience.py.)"""

import json
import os
import threading
import time
from dataclasses import replace
from datetime import timedelta

import pytest

from jobqueue import Job, JobQueueError, JobStatus, NoSuchJobError, Queue, Retry, Worker
from tests import jobs
from tests.conftest import FAST_TIMING, burst_to_the_end, pid_alive, wait_for, worker_blocked
from tests.invariants import attempts, max_at_once


def work(queues, conn, **kwargs):
    w = Worker(queues, connection=conn, **{"timing": FAST_TIMING, **kwargs})
    w.work(burst=True)
    return w


@pytest.mark.parametrize("fork", [False, True], ids=["threads", "fork"])
def test_burst_worker_runs_jobs_and_records_results(q, fork):
    ok = q.enqueue(jobs.add, 2, 3)
    bad = q.enqueue(jobs.fail, "nope")
    w = work([q], q.connection, concurrency=2, fork=fork)
    assert ok.return_value() == 5 and ok.result == 5
    assert ok.get_status() == JobStatus.FINISHED and ok.id in q.finished_job_registry
    ok.refresh()
    assert ok.started_at <= ok.ended_at and ok.worker_name == w.name
    assert bad.get_status() == JobStatus.FAILED and bad.id in q.failed_job_registry
    bad.refresh()
    assert "ValueError: nope" in bad.exc_info
    assert (w.successful_job_count, w.failed_job_count) == (1, 1)
    assert len(q.started_job_registry) == 0


@pytest.mark.parametrize("fork", [False, True], ids=["threads", "fork"])
def test_many_jobs_at_once_in_one_worker(q, tmp_path, fork):
    # each job waits until all 8 have started: run one after another, the first gives up
    created = [q.enqueue(jobs.rendezvous, str(tmp_path / "arrived"), 8) for _ in range(8)]
    work([q], q.connection, concurrency=8, fork=fork)
    assert [job.return_value() for job in created] == [8] * 8


def test_earlier_queue_always_goes_first(r, tmp_path):
    log = tmp_path / "order"
    low, high = Queue("low", connection=r), Queue("high", connection=r)
    for i in range(3):
        low.enqueue(jobs.record, str(log), f"low{i}")
    for i in range(3):
        high.enqueue(jobs.record, str(log), f"high{i}")
    work([high, low], r, concurrency=1)
    order = [line.split()[1] for line in log.read_text().splitlines() if line.startswith("start")]
    assert order == ["high0", "high1", "high2", "low0", "low1", "low2"]


def test_retry_without_interval_then_success(q, tmp_path):
    job = q.enqueue(jobs.fail_until, str(tmp_path / "n"), 3, retry=Retry(max=3))
    work([q], q.connection)
    assert job.get_status() == JobStatus.FINISHED and job.return_value() == 3


def test_retries_with_intervals_go_through_the_scheduled_registry(q, tmp_path):
    job = q.enqueue(jobs.fail_until, str(tmp_path / "n"), 99, retry=Retry(max=2, interval=[0.3, 0.6]))
    w = Worker([q], connection=q.connection, timing=FAST_TIMING)
    w.work(burst=True)  # first attempt; the retry waits in the scheduled registry
    assert job.get_status() == JobStatus.SCHEDULED and job.id in q.scheduled_job_registry
    def retried_to_the_end():
        work([q], q.connection)  # promotes the retry once it is due, then runs it
        return job.get_status() == JobStatus.FAILED
    wait_for(retried_to_the_end, timeout=10, interval=0.1, message="retries exhausted")
    job.refresh()
    assert job.get_status() == JobStatus.FAILED and "attempt 3 fails" in job.exc_info
    assert (tmp_path / "n").read_text() == "xxx"


def test_scheduled_job_runs_when_due_and_not_before(q):
    job = q.enqueue_in(timedelta(seconds=0.5), jobs.add, 1, 1)
    due = q.scheduled_job_registry.get_scheduled_time(job).timestamp()
    work([q], q.connection)
    assert job.get_status() == JobStatus.SCHEDULED
    wait_for(lambda: work([q], q.connection) and job.get_status() == JobStatus.FINISHED, interval=0.1,
             message="scheduled job ran")
    job.refresh()
    assert job.started_at.timestamp() >= due


def test_blocking_worker_wakes_for_new_and_scheduled_jobs(q):
    import threading
    w = Worker([q], connection=q.connection, timing=FAST_TIMING)
    thread = threading.Thread(target=w.work, daemon=True)
    thread.start()
    wait_for(lambda: worker_blocked(q.connection), message="worker blocked, idle")
    job = q.enqueue(jobs.add, 1, 2)
    wait_for(lambda: job.get_status() == JobStatus.FINISHED, timeout=5, message="idle worker woke up")
    later = q.enqueue_in(timedelta(seconds=0.4), jobs.add, 2, 2)
    wait_for(lambda: later.get_status() == JobStatus.FINISHED, timeout=5, message="scheduled job ran")
    w.request_stop()
    thread.join(5)
    assert not thread.is_alive()


@pytest.mark.parametrize("fork", [False, True], ids=["threads", "fork"])
def test_timeout_stops_the_job_and_fails_it_with_a_clear_error(q, tmp_path, fork):
    log = tmp_path / "runs"
    func = jobs.record if fork else jobs.busy_record  # fork: the horse is killed; threads: a pure-Python loop
    slow = q.enqueue(func, str(log), "slow", 60, job_timeout=1)
    quick = q.enqueue(jobs.add, 1, 1)
    work([q], q.connection, concurrency=2, fork=fork)
    slow.refresh()
    assert slow.get_status() == JobStatus.FAILED
    assert "JobTimeoutError: Task exceeded maximum timeout value (1 seconds)" in slow.exc_info
    assert quick.return_value() == 2
    if fork:
        horse = int(log.read_text().split()[2])
        wait_for(lambda: not pid_alive(horse), timeout=5, message="work horse killed")
    else:
        wait_for(lambda: "stopped slow JobTimeoutError" in log.read_text(), timeout=5, message="job thread stopped")
    assert "done" not in log.read_text()


def test_work_horse_that_dies_fails_its_job_only(q):
    job = q.enqueue(jobs.crash_horse)
    after = q.enqueue(jobs.add, 1, 1)
    work([q], q.connection, fork=True)
    job.refresh()
    assert "work horse" in job.exc_info and "exit code 3" in job.exc_info
    assert after.return_value() == 2


def test_bad_input_fails_the_job_and_the_worker_keeps_running(q, r):
    missing = q.enqueue("tests.no_such_module.func")
    no_attr = q.enqueue("tests.jobs.no_such_function")
    corrupt = q.enqueue(jobs.add, 1, 1)
    r.hset(corrupt.key, "data", "{not json")
    gutted = q.enqueue(jobs.add, 1, 1)
    r.hdel(gutted.key, "func")
    orphan, _ = q.enqueue_many([Queue.prepare_data(jobs.add, (1, 1), job_timeout=77)] * 2)  # a batch's options
    r.delete(q.backend.keys.shared(r.hget(orphan.key, "shared").decode()))
    odd_timeout = q.enqueue(jobs.add, 1, 1)
    r.hset(odd_timeout.key, "timeout", "soon")
    bad_result = q.enqueue(jobs.unserializable)
    undecodable = q.enqueue(jobs.fail, "no such file: /photos/caf\udce9")  # a name os.fsdecode could not decode
    fine = q.enqueue(jobs.add, 2, 2)
    work([q], q.connection)
    assert fine.return_value() == 4
    messages = {}
    for job in (missing, no_attr, corrupt, gutted, orphan, odd_timeout, bad_result, undecodable):
        job.refresh()
        assert job.get_status() == JobStatus.FAILED
        messages[job.id] = job.exc_info
    assert "no module" in messages[missing.id] or "no_such_module" in messages[missing.id]
    assert "has no no_such_function" in messages[no_attr.id]
    assert "not valid JSON" in messages[corrupt.id]
    assert "no 'func' field" in messages[gutted.id]
    assert "shared options" in messages[orphan.id] and "re-enqueue" in messages[orphan.id]
    assert "corrupted" in messages[odd_timeout.id]
    assert "JSON" in messages[bad_result.id]
    assert "no such file: /photos/caf\\udce9" in messages[undecodable.id]  # escaped: Redis stores UTF-8 only


def test_pickle_jobs_need_the_workers_opt_in_too(r):
    q = Queue("p", connection=r, serializer="pickle")
    job = q.enqueue(jobs.echo, {1})
    work([q], r)
    job.refresh()
    assert job.get_status() == JobStatus.FAILED and "--allow-pickle" in job.exc_info
    job.requeue()
    work([q], r, allow_pickle=True)
    assert job.return_value() == {"args": [{1}], "kwargs": {}}


def test_allow_list_limits_importable_functions(q):
    job = q.enqueue("os.getcwd")
    ok = q.enqueue(jobs.add, 1, 1)
    work([q], q.connection, allowed_modules=["tests.jobs"])
    job.refresh()
    assert "module os is not among the modules this worker runs (tests.jobs)" in job.exc_info
    assert ok.return_value() == 2


@pytest.mark.parametrize("allowed", [None, ["tests."], ["*"]])
def test_a_function_is_taken_only_from_the_module_that_defines_it(q, r, tmp_path, allowed):
    """Whatever the allow-list, a path cannot reach through a module's imports."""
    planted = tmp_path / "planted"
    through = [q.enqueue("tests.jobs.os.system", f"touch {planted}"),       # tests.jobs imported os
               q.enqueue("tests.jobs.get_current_job"),                       # imported from jobqueue
               q.enqueue("tests.jobs.time.sleep", 0)]
    stdlib = q.enqueue("os.getcwd")
    own = q.enqueue(jobs.add, 2, 3)
    work([q], r, allowed_modules=allowed)
    assert not planted.exists()
    messages = {job.id: (job.refresh(), job.exc_info)[1] for job in through}
    assert "reaches into module os through tests.jobs" in messages[through[0].id]
    assert "reaches into module time through tests.jobs" in messages[through[2].id]
    assert all(job.get_status() == JobStatus.FAILED for job in through)
    assert own.return_value() == 5
    stdlib.refresh()
    if allowed == ["*"]:  # anything importable, re-exports included (os.getcwd is defined in posix)
        assert stdlib.return_value() == os.getcwd()
    else:
        assert "defined in jobqueue.worker.outcome, not in tests.jobs" in messages[through[1].id]
        assert "module os is not among the modules this worker runs" in stdlib.exc_info


def test_a_refused_job_is_failed_without_decoding_its_arguments_or_calling_back(r, tmp_path):
    """A pickled payload that would run a command when decoded, with an on_failure callback that reads it."""
    planted = tmp_path / "planted"
    q = Queue("p", connection=r, serializer="pickle")
    job = q.enqueue(jobs.echo, jobs.Planted(str(planted)), on_failure=jobs.remember_failure)
    refused = Queue(connection=r).enqueue("os.system", f"touch {planted}", on_failure=jobs.remember_failure)
    work([q, Queue(connection=r)], r)  # no --allow-pickle, no allow-list
    assert job.get_status() == JobStatus.FAILED and refused.get_status() == JobStatus.FAILED
    assert not planted.exists()
    assert r.get(f"callback-calls:{job.id}") is None and r.get(f"callback-calls:{refused.id}") is None


def test_get_current_job_and_meta_inside_a_job(q):
    job = q.enqueue(jobs.progress)
    work([q], q.connection)
    assert job.return_value() == job.id
    assert Job.fetch(job.id, q.connection).meta == {"progress": 50}


def test_result_ttl_expires_the_job(q):
    job = q.enqueue(jobs.add, 1, 1, result_ttl=0)
    work([q], q.connection)
    with pytest.raises(NoSuchJobError):
        Job.fetch(job.id, q.connection)
    keep = q.enqueue(jobs.add, 1, 1, result_ttl=-1)
    work([q], q.connection)
    assert keep.return_value() == 2


def test_jobs_that_end_close_together_are_recorded_in_one_round_trip(q):
    """The worker lingers for the outcomes of jobs still running (timing.linger):
    one finish call records all four, on one Redis clock reading."""
    taken = [q.enqueue(jobs.sleep, seconds) for seconds in (0.0, 0.1, 0.2, 0.3)]
    work([q], q.connection, concurrency=4, timing=replace(FAST_TIMING, linger=2.0))
    ended = {Job.fetch(job.id, q.connection).ended_at for job in taken}
    assert len(ended) == 1 and all(job.return_value() is not None for job in taken)


def test_a_long_job_holds_no_other_outcome_past_the_linger(q):
    quick, slow = q.enqueue(jobs.sleep, 0.0), q.enqueue(jobs.sleep, 4.0)
    w = Worker([q], connection=q.connection, concurrency=2, timing=replace(FAST_TIMING, linger=0.2))
    thread = threading.Thread(target=w.work, kwargs={"burst": True}, daemon=True)
    thread.start()
    wait_for(lambda: quick.get_status() == JobStatus.FINISHED, timeout=3, message="the quick job recorded")
    assert slow.get_status() == JobStatus.STARTED
    thread.join(10)


def test_canceled_running_job_result_is_not_recorded(q):
    import threading
    job = q.enqueue(jobs.sleep, 0.8)
    w = Worker([q], connection=q.connection, timing=FAST_TIMING)
    thread = threading.Thread(target=w.work, kwargs={"burst": True})
    thread.start()
    wait_for(lambda: job.get_status() == JobStatus.STARTED, message="job started")
    job.cancel()
    thread.join(5)
    assert job.get_status() == JobStatus.CANCELED and job.return_value() is None


def test_max_jobs_stops_the_worker(q):
    for i in range(5):
        q.enqueue(jobs.add, i, i)
    w = Worker([q], connection=q.connection, timing=FAST_TIMING)
    w.work(max_jobs=2)
    assert w.successful_job_count == 2 and len(q) == 3


def _children() -> set[int]:
    import os
    pids = set()
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                pids |= {int(p) for p in f.read().split()}
        except FileNotFoundError:
            pass  # that thread ended meanwhile
    return pids


def test_fork_mode_with_concurrency_runs_every_job_and_leaves_no_horse(q):
    before = _children()
    created = q.enqueue_many([Queue.prepare_data(jobs.pid) for _ in range(60)])
    work([q], q.connection, fork=True, concurrency=4)
    pids = {job.return_value() for job in created}
    assert None not in pids and len(pids) == 60  # each job in a fresh work horse
    wait_for(lambda: _children() <= before, timeout=5, message="spare horses gone")


def test_success_and_failure_callbacks(q, r):
    ok = q.enqueue(jobs.add, 1, 2, on_success=jobs.remember_success)
    bad = q.enqueue(jobs.fail, "x", on_failure="tests.jobs.remember_failure", retry=Retry(max=1))
    late = q.enqueue(jobs.busy_loop, 3, job_timeout=1, on_failure=jobs.remember_failure)
    work([q], r, concurrency=3)
    assert r.get(f"callback:{ok.id}") == b"ok 3"
    assert r.get(f"callback:{bad.id}") == b"failed JobFailed: ValueError: x"
    assert r.get(f"callback-calls:{bad.id}") == b"1"  # once, after the last retry, not per attempt
    assert b"JobTimeoutError" in r.get(f"callback:{late.id}")


@pytest.mark.parametrize("fork", [False, True], ids=["threads", "fork"])
def test_write_on_success_rides_with_the_outcome_and_is_dropped_on_failure(q, r, fork):
    ok = q.enqueue(jobs.count_then, "counts", "ok")
    bad = q.enqueue(jobs.count_then, "counts", "bad", "fail")
    broken = q.enqueue(jobs.count_then, "counts", "broken", "broken")
    many = [q.enqueue(jobs.count_then, "counts", "many") for _ in range(20)]
    r.script_flush()  # the worker's pipeline meets NOSCRIPT and loads the scripts
    work([q], r, concurrency=8, fork=fork)
    # each success counted once (batched per round trip); the failed job's write never happened
    assert r.hgetall("counts") == {b"ok": b"1", b"broken": b"1", b"many": b"20"}
    assert all(job.get_status() == JobStatus.FINISHED for job in many)
    assert ok.get_status() == JobStatus.FINISHED and bad.get_status() == JobStatus.FAILED
    assert broken.get_status() == JobStatus.FINISHED  # a broken script is logged, the outcome recorded


@pytest.mark.parametrize("fork", [False, True], ids=["threads", "fork"])
def test_a_write_script_redis_has_not_seen_rides_with_the_success_that_asked_for_it(q, r, fork):
    # Redis knows finish+fetch (an earlier job finished) but not the write's script: the write must
    # still be applied with the success, not after it (where the fence finds the attempt gone)
    r.script_flush()
    first = q.enqueue(jobs.add, 1, 1)
    counted = q.enqueue(jobs.count_then, "counts", "first-write")
    job_key = q.backend.keys.job(counted.id)
    r.config_set("notify-keyspace-events", "Kh")  # hash commands, in the order Redis applies them
    watch = r.pubsub()
    watch.subscribe(f"__keyspace@0__:counts", f"__keyspace@0__:{job_key}")
    try:
        work([q], r, concurrency=1, fork=fork)
        events = []
        while (message := watch.get_message(timeout=0.2)) is not None:
            if message["type"] == "message":
                events.append((message["channel"].decode().split(":", 1)[1], message["data"].decode()))
    finally:
        watch.close()
        r.config_set("notify-keyspace-events", "")
    assert first.get_status() == JobStatus.FINISHED and counted.get_status() == JobStatus.FINISHED
    assert r.hgetall("counts") == {b"first-write": b"1"}
    # in the same MULTI/EXEC, before the finish: not a round trip after the success was visible
    assert ("counts", "hincrby") in events, events
    assert events.index(("counts", "hincrby")) < max(i for i, e in enumerate(events) if e == (job_key, "hset")), events


@pytest.mark.parametrize("forgot", ["flush", "flush-others-reload"])
def test_writes_and_outcomes_survive_redis_forgetting_its_scripts_mid_run(q, r, forgot):
    """The worker has run every script of its round trip; then Redis forgets them all (a restart,
    SCRIPT FLUSH) while a job runs. flush: its write and its outcome meet NOSCRIPT and are sent
    again. flush-others-reload: another worker has loaded jobqueue's scripts again but not the
    write's, so in this worker's transaction the finish is recorded and the write meets NOSCRIPT;
    sent again after the finish, it is applied (its attempt is settled), once."""
    warm = q.enqueue(jobs.count_then, "counts", "warm")
    forgotten = q.enqueue(jobs.count_then, "counts", forgot, forgot)
    work([q], r, concurrency=1)
    assert warm.get_status() == JobStatus.FINISHED and forgotten.get_status() == JobStatus.FINISHED
    assert r.hgetall("counts") == {b"warm": b"1", forgot.encode(): b"1"}


def test_burst_worker_never_quits_while_its_own_retry_waits_even_when_redis_forgot_a_script(q, r, tmp_path):
    # Redis has forgotten the scripts (a restart); the fetch that follows the retry's finish must see the
    # retry back on the queue, so the burst worker runs it and quits only when it has failed for good
    r.script_flush()
    job = q.enqueue(jobs.fail_until, str(tmp_path / "n"), 99, retry=Retry(max=2))
    work([q], r)
    assert (tmp_path / "n").read_text() == "xxx" and job.get_status() == JobStatus.FAILED
    assert len(q) == 0


def test_write_on_success_outside_a_worker_runs_at_once(r):
    job = Job("standalone", connection=r)
    job.write_on_success(jobs.COUNT, "counts", "now")
    r.script_flush()  # NOSCRIPT: loaded again
    job.write_on_success(jobs.COUNT, "counts", "now")
    assert r.hget("counts", "now") == b"2"


def test_a_failing_success_callback_fails_the_job(q):
    job = q.enqueue(jobs.add, 1, 1, on_success="tests.jobs.broken_callback")
    work([q], q.connection)
    job.refresh()
    assert job.get_status() == JobStatus.FAILED and "the success callback broke" in job.exc_info


def test_stop_retrying_fails_at_once_and_retry_later_waits(q, tmp_path):
    gone = q.enqueue(jobs.give_up, str(tmp_path / "a"), retry=Retry(max=5))
    limited = q.enqueue(jobs.rate_limited, str(tmp_path / "b"), retry=Retry(max=2))
    work([q], q.connection)
    assert gone.get_status() == JobStatus.FAILED and (tmp_path / "a").read_text() == "x"
    assert limited.get_status() == JobStatus.SCHEDULED  # interval 0, but the job asked for 0.6 s
    limited.refresh()  # enqueued_at: when the retry was recorded
    asked = q.scheduled_job_registry.get_scheduled_time(limited).timestamp() - limited.enqueued_at.timestamp()
    assert 0.55 <= asked <= 0.65
    wait_for(lambda: work([q], q.connection) and limited.get_status() == JobStatus.FINISHED, interval=0.1,
             message="rate-limited job retried")
    assert limited.return_value() == "ok" and (tmp_path / "b").read_text() == "xx"


def test_postpone_runs_the_job_again_later_without_using_a_retry_or_counting_a_failure(q, r, tmp_path):
    job = q.enqueue(jobs.not_yet, str(tmp_path / "n"), 3, 0.3, retry=Retry(max=1),
                    on_failure="tests.jobs.remember_failure")
    worker = Worker([q], connection=r, timing=FAST_TIMING)
    worker.work(burst=True)
    assert job.get_status() == JobStatus.SCHEDULED
    job.refresh()
    asked = q.scheduled_job_registry.get_scheduled_time(job).timestamp() - job.enqueued_at.timestamp()
    assert 0.25 <= asked <= 0.35 and job._get("retries_left") == "1"   # the pause it asked for; no retry used
    wait_for(lambda: worker.work(burst=True) and job.get_status() == JobStatus.FINISHED, interval=0.1,
             message="the postponed job ran")
    assert job.return_value() == "ran" and (tmp_path / "n").read_text() == "xxxx"
    assert job._get("retries_left") == "1" and worker.failed_job_count == 0 and not r.exists(f"callback:{job.id}")
    assert q.failed_job_registry.count == 0


def test_workers_are_listed_per_queue(r):
    import threading
    from jobqueue import Worker as W
    q1, q2 = Queue("one", connection=r), Queue("two", connection=r)
    w = Worker([q1], connection=r, name="lister", timing=FAST_TIMING)
    thread = threading.Thread(target=w.work, daemon=True)
    thread.start()
    wait_for(lambda: W.count(connection=r) == 1, message="worker registered")
    assert [x.name for x in W.all(queue=q1)] == ["lister"] and W.all(queue=q2) == []
    assert W.all(connection=r)[0].state == "idle"
    w.request_stop()
    thread.join(5)
    assert W.count(connection=r) == 0


def test_an_expired_job_is_not_counted_as_taken_and_ttl_bounds_only_the_wait(q, r):
    gone = q.enqueue(jobs.add, 1, 1, ttl=1)
    live = q.enqueue(jobs.add, 2, 2)
    wait_for(lambda: not r.exists(gone.key), timeout=5, message="first job's ttl ran out while it waited")
    work([q], r, concurrency=1)  # burst: must not take the expired id for work done
    assert live.get_status() == JobStatus.FINISHED and len(q) == 0
    slow = q.enqueue(jobs.sleep, 1.5, ttl=1)
    work([q], r)
    assert slow.get_status() == JobStatus.FINISHED and slow.return_value() == 1.5   # its hash outlived the ttl,
    kept = Job.fetch(slow.id, r)                                                     # whole
    assert (kept.func_name, kept.args, kept.origin) == ("tests.jobs.sleep", [1.5], q.name)
    assert r.ttl(slow.key) == -1


def test_poison_keys_are_quarantined_and_the_rest_goes_on(q, r, caplog):
    """A string where a job hash should be, among 3 good jobs of one fetch; a
    queue key of the wrong type before a good queue."""
    good = [q.enqueue(jobs.add, i, i) for i in range(2)]
    r.rpush(q.key, "poison")  # in the middle of one fetch
    r.set(q.backend.keys.job("poison"), "not a hash")
    good.append(q.enqueue(jobs.add, 2, 2))
    high = Queue("high", connection=r)
    r.hset(high.key, "not", "a list")
    burst_to_the_end(Worker([high, q], connection=r, concurrency=8, timing=FAST_TIMING))
    assert all(job.get_status() == JobStatus.FINISHED for job in good)
    notes = [json.loads(n) for n in r.lrange(q.backend.keys.quarantine, 0, -1)]
    assert {n["key"] for n in notes} == {q.backend.keys.job("poison"), high.key}
    assert r.get(q.backend.keys.quarantine + ":" + q.backend.keys.job("poison")) == b"not a hash"
    assert not r.exists(high.key) and "WRONGTYPE" in notes[0]["reason"]
    said = [m for m in caplog.messages if m.startswith("Quarantined a key")]
    assert sorted(json.loads(m.split(": ", 1)[1])["key"] for m in said) == sorted(n["key"] for n in notes)


def test_a_job_hash_corrupted_while_its_job_runs_is_quarantined_and_the_worker_goes_on(q, r, caplog):
    """The outcome has nowhere to go: it is dropped and said at once, the key
    moved out of the way; the rest of the batch and the next jobs are recorded."""
    running, beside = q.enqueue(jobs.sleep, 0.5), q.enqueue(jobs.add, 1, 1)
    after = q.enqueue(jobs.add, 2, 2)
    # no maintenance pass after the first: the worker itself says what its round trip quarantined
    worker = Worker([q], connection=r, concurrency=2, timing=replace(FAST_TIMING, maintenance_interval=60))
    thread = threading.Thread(target=worker.work, daemon=True)
    thread.start()
    try:
        wait_for(lambda: running.get_status() == JobStatus.STARTED, message="the sleeper runs")
        r.delete(running.key)
        r.set(running.key, "not a hash")
        wait_for(lambda: any(m.startswith("Quarantined a key") and running.key in m for m in caplog.messages),
                 timeout=10, message="the quarantine said while the worker runs on")
        wait_for(lambda: after.get_status() == JobStatus.FINISHED, message="the next job recorded")
    finally:
        worker.request_stop()
        thread.join(10)
    assert beside.return_value() == 2 and after.return_value() == 4
    assert q.started_job_registry.count == 0
    assert set(q.finished_job_registry.get_job_ids()) == {beside.id, after.id}
    assert r.get(q.backend.keys.quarantine + ":" + running.key) == b"not a hash"
    assert any(f"outcome of job {running.id} (attempt 1) dropped" in m for m in caplog.messages)


def test_options_are_checked_at_enqueue(q):
    from jobqueue.exceptions import InvalidJobOperation
    with pytest.raises(InvalidJobOperation, match="not UTF-8"):  # an id names keys: UTF-8 text only
        q.enqueue(jobs.add, 1, 1, job_id="j\udcff")
    with pytest.raises(InvalidJobOperation, match="not UTF-8"):
        q.enqueue_prepared(q.prepare_calls(jobs.add, [((1, 1), {}, "j\udcff")]))
    with pytest.raises(JobQueueError, match="UTF-8 name"):
        Queue("q\udcff", connection=q.connection)
    assert q.count == 0
    for bad in ({"job_timeout": -5}, {"job_timeout": 0}, {"ttl": 0}, {"result_ttl": -2}, {"failure_ttl": -3}):
        with pytest.raises(InvalidJobOperation, match="out of range"):
            q.enqueue(jobs.add, 1, 1, **bad)
    assert len(q) == 0
    forever = q.enqueue(jobs.add, 1, 1, job_timeout=-1, result_ttl=-1, failure_ttl=-1)  # RQ's "none"
    assert (forever.timeout, forever.result_ttl, forever.failure_ttl) == (-1, -1, -1)


def test_log_lines_escape_and_bound_what_jobs_carry(q, r, caplog):
    caplog.set_level("INFO", logger="jobqueue.worker")
    forged = q.enqueue(jobs.add, 1, 1, job_id="x\n12:00:00 default: Job OK (forged)",
                       description="d" * 5_000_000)
    work([q], r)
    assert forged.get_status() == JobStatus.FINISHED
    text = caplog.text
    assert "\n12:00:00 default: Job OK (forged)" not in text and "x\\n12:00:00" in text
    assert "d" * 301 not in text and "more characters" in text
    assert len(text) < 20_000


def test_poisoned_registries_workers_and_fields_stop_no_worker(q, r, caplog):
    """Housekeeping is global: one bad key must not stop every worker on every queue."""
    keys = q.backend.keys
    for kind in ("failed", "finished", "started", "scheduled"):
        r.set(keys.registry(kind, q.name), "not a sorted set")
    r.sadd(keys.queues, q.name)
    r.sadd(keys.workers, "ghost")
    r.hset(keys.worker("ghost"), "last_seen", "abc")
    ok = q.enqueue(jobs.add, 1, 1)
    bad_ttl = q.enqueue(jobs.add, 2, 2)
    r.hset(bad_ttl.key, "result_ttl", "abc")
    failing = q.enqueue(jobs.fail)
    later = q.enqueue_in(timedelta(seconds=0.3), jobs.add, 3, 3)
    time.sleep(0.4)  # due before the worker starts: a burst worker does not wait for what is not due
    burst_to_the_end(Worker([q], connection=r, timing=FAST_TIMING))
    assert ok.return_value() == 2 and bad_ttl.return_value() == 4 and later.return_value() == 6
    assert failing.get_status() == JobStatus.FAILED and q.failed_job_registry.get_job_ids() == [failing.id]
    moved = {json.loads(n)["key"] for n in r.lrange(keys.quarantine, 0, -1)}
    assert {keys.registry(k, q.name) for k in ("failed", "finished", "scheduled")} <= moved
    said = [m for m in caplog.messages if m.startswith("Quarantined a key")]
    assert sorted(json.loads(m.split(": ", 1)[1])["key"] for m in said) == sorted(moved)   # each said once
    assert not r.sismember(keys.workers, "ghost")


def test_a_module_outside_the_allow_list_is_never_imported(q, r, tmp_path, monkeypatch):
    planted = tmp_path / "imported"
    (tmp_path / "sidefx_tasks.py").write_text(f"open({str(planted)!r}, 'w').close()\ndef f():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    job = q.enqueue("sidefx_tasks.f")
    work([q], r, allowed_modules=["tests."])
    job.refresh()
    assert "module sidefx_tasks is not among the modules this worker runs" in job.exc_info
    assert not planted.exists()   # the check came before the import
    again = q.enqueue("sidefx_tasks.f")
    work([q], r)                  # the default: the application's own modules, which this one is
    assert again.return_value() == 1 and planted.exists()


def _threads(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def test_a_job_returning_a_future_holds_its_slot_not_a_thread(redis_server, r, workers, tmp_path):
    q, log = Queue("futures", connection=r), tmp_path / "attempts.log"
    ids = [q.enqueue(jobs.later, str(log), f"f{i}", 1.5).id for i in range(30)]
    failing = q.enqueue(jobs.later, str(log), "bad", 0.1, fail=True)
    worker = workers.start(redis_server.url, "futures", "-c", "31", "--threads", "2")
    wait_for(lambda: len(attempts(log)) == 31, message="every job started")
    assert max_at_once(log, {worker.pid})[worker.pid] >= 30     # 30 at once on 2 job threads
    assert _threads(worker.pid) < 12                           # main, heartbeat, waker, 2 job threads, resolver...
    wait_for(lambda: all(Job.fetch(i, r).get_status() == JobStatus.FINISHED for i in ids), message="all resolved")
    assert Job.fetch(ids[0], r).return_value() == "f0"
    wait_for(lambda: Job.fetch(failing.id, r).get_status() == JobStatus.FAILED, message="the failed future")
    assert "RuntimeError: bad failed on the resolver's thread" in Job.fetch(failing.id, r).exc_info


def test_a_future_that_outlives_its_timeout_is_cancelled(q, tmp_path):
    log = tmp_path / "attempts.log"
    job = q.enqueue(jobs.later, str(log), "stuck", 3600, job_timeout=1)
    after = q.enqueue(jobs.add, 1, 1)
    work([q], q.connection, concurrency=1)
    job.refresh()
    assert job.get_status() == JobStatus.FAILED and "JobTimeoutError" in job.exc_info
    assert "end stuck" in log.read_text() and log.read_text().split()[-1] == "cancelled"   # its owner was told
    assert after.return_value() == 2                         # the slot came back
