"""Queue and Job as an RQ user knows them."""

import json
import threading
from datetime import datetime, timedelta, timezone

import pytest

from jobqueue import (Job, JobStatus, NoSuchJobError, Queue, Retry, SerializationError)
from jobqueue.exceptions import DuplicateJobError, ImportFunctionError, InvalidJobOperation
from jobqueue.retry import retry_delay
from tests import jobs


def test_enqueue_stores_an_importable_call_with_rq_options(q):
    before = datetime.now(timezone.utc).replace(microsecond=0)
    job = q.enqueue(jobs.add, 1, b=2, job_timeout=30, result_ttl=60, failure_ttl=120, ttl=600,
                    description="adding", meta={"owner": "me"}, job_id="my-id")
    assert job.id == job.get_id() == "my-id"
    fetched = Job.fetch("my-id", connection=q.connection)
    assert fetched.func_name == "tests.jobs.add"
    assert fetched.args == [1] and fetched.kwargs == {"b": 2}
    assert (fetched.timeout, fetched.result_ttl, fetched.failure_ttl, fetched.ttl) == (30, 60, 120, 600)
    assert fetched.description == "adding" and fetched.meta == {"owner": "me"}
    assert fetched.origin == "default" and fetched.get_status() == JobStatus.QUEUED
    after = datetime.now(timezone.utc)
    assert before <= fetched.created_at <= fetched.enqueued_at <= after and fetched.started_at is None
    assert 0 < q.connection.ttl(Job.key_for("my-id")) <= 600


def test_documented_defaults_timeout_180_s_result_500_s_failure_a_year(q):
    job = q.enqueue(jobs.add, 1, 1)
    assert (job.timeout, job.result_ttl, job.failure_ttl) == (180, 500, 365 * 24 * 3600)


def test_description_reads_like_the_call(q):
    assert q.enqueue("tests.jobs.echo", "x", 2, flag=True).description == "tests.jobs.echo('x', 2, flag=True)"


def test_explicit_args_and_kwargs_and_enqueue_call(q):
    job = q.enqueue(jobs.echo, args=(1, 2), kwargs={"timeout": 5})
    assert Job.fetch(job.id, q.connection).kwargs == {"timeout": 5}
    job2 = q.enqueue_call("tests.jobs.add", args=[1, 2], timeout=9)
    assert Job.fetch(job2.id, q.connection).timeout == 9


def test_queue_listing_counting_and_fetching(q):
    ids = [q.enqueue(jobs.add, i, i).id for i in range(3)]
    front = q.enqueue(jobs.add, 9, 9, at_front=True)
    assert len(q) == 4 and q.count == 4
    assert q.get_job_ids() == [front.id, *ids]
    assert [j.id for j in q.get_jobs()] == [front.id, *ids]
    assert q.fetch_job(ids[0]).id == ids[0]
    assert q.fetch_job("nope") is None
    assert Queue("other", connection=q.connection).fetch_job(ids[0]) is None
    assert {x.name for x in Queue.all(connection=q.connection)} == {"default"}


def test_empty_returns_the_count_and_removes_the_jobs(q):
    ids = [q.enqueue(jobs.add, i, i).id for i in range(5)]
    assert q.empty() == 5
    assert len(q) == 0
    with pytest.raises(NoSuchJobError):
        Job.fetch(ids[0], q.connection)


def test_delete_queue_with_its_jobs(q):
    job = q.enqueue(jobs.add, 1, 1)
    q.delete(delete_jobs=True)
    assert Queue.all(connection=q.connection) == []
    assert not q.connection.exists(Job.key_for(job.id))


def test_enqueue_many_with_prepare_data(q):
    datas = [Queue.prepare_data(jobs.add, (i, i), job_id=f"id{i}", result_ttl=10) for i in range(1200)]
    created = q.enqueue_many(datas)
    assert len(created) == 1200 and len(q) == 1200
    assert q.get_job_ids(0, 2) == ["id0", "id1"]
    assert Job.fetch("id1199", q.connection).result_ttl == 10


def test_non_json_argument_fails_at_enqueue_and_enqueues_nothing(q):
    with pytest.raises(SerializationError, match="JSON"):
        q.enqueue(jobs.echo, object())
    with pytest.raises(SerializationError):
        q.enqueue_many([Queue.prepare_data(jobs.echo, (1,)), Queue.prepare_data(jobs.echo, ({1, 2},))])
    looped: list = []
    looped.append(looped)
    with pytest.raises(SerializationError, match="contains itself"):  # a clear error, not a crash
        q.enqueue(jobs.echo, looped)
    with pytest.raises(SerializationError, match="JSON"):
        q.enqueue(jobs.echo, float("nan"))
    assert len(q) == 0


def test_pickle_is_an_explicit_opt_in(r):
    q = Queue("pickled", connection=r, serializer="pickle")
    job = q.enqueue(jobs.echo, {1, 2})
    assert Job.fetch(job.id, r).args == [{1, 2}]


def test_functions_a_worker_could_not_import_are_refused(q):
    with pytest.raises(ImportFunctionError, match="module-level"):
        q.enqueue(lambda: 1)
    with pytest.raises(ImportFunctionError, match="dotted path"):
        q.enqueue("not a path")


def test_unknown_job_id_is_a_clear_error(r):
    with pytest.raises(NoSuchJobError, match="no job with id 'missing'"):
        Job.fetch("missing", connection=r)


def test_meta_save_and_refresh(q):
    job = q.enqueue(jobs.add, 1, 1)
    job.meta["progress"] = 10
    job.save_meta()
    other = Job.fetch(job.id, q.connection)
    assert other.meta == {"progress": 10}


def test_to_dict_is_json_friendly(q):
    job = q.enqueue(jobs.add, 1, 2, meta={"a": 1})
    data = json.loads(json.dumps(Job.fetch(job.id, q.connection).to_dict()))
    assert data["args"] == [1, 2] and data["meta"] == {"a": 1} and data["status"] == "queued"
    assert data["description"] == "tests.jobs.add(1, 2)"


def test_cancel_removes_a_queued_job_from_the_queue(q):
    job = q.enqueue(jobs.add, 1, 1)
    job.cancel()
    assert job.get_status() == JobStatus.CANCELED
    assert len(q) == 0 and job.id in q.canceled_job_registry
    with pytest.raises(InvalidJobOperation):
        job.cancel()


def test_delete_job_removes_every_reference(q):
    job = q.enqueue(jobs.add, 1, 1)
    job.delete()
    assert len(q) == 0 and not q.connection.exists(job.key)


def test_requeue_only_failed_or_canceled(q):
    job = q.enqueue(jobs.add, 1, 1)
    with pytest.raises(InvalidJobOperation, match="only failed or canceled"):
        job.requeue()
    job.cancel()
    job.requeue()
    assert job.get_status() == JobStatus.QUEUED and q.get_job_ids() == [job.id]


def test_enqueue_at_and_in_go_to_the_scheduled_registry(q):
    at = datetime.now(timezone.utc) + timedelta(hours=1)
    job = q.enqueue_at(at, jobs.add, 1, 1)
    job2 = q.enqueue_in(timedelta(minutes=5), jobs.add, 2, 2)
    assert job.get_status() == JobStatus.SCHEDULED and len(q) == 0
    registry = q.scheduled_job_registry
    assert set(registry.get_job_ids()) == {job.id, job2.id}
    assert abs(registry.get_scheduled_time(job).timestamp() - at.timestamp()) < 0.01
    in_five = registry.get_scheduled_time(job2) - datetime.now(timezone.utc)
    assert timedelta(minutes=4) < in_five <= timedelta(minutes=5)


def test_next_due_says_when_the_earliest_scheduled_job_is_due_on_redis_clock(q, r):
    registry = q.scheduled_job_registry
    assert registry.next_due() is None
    q.enqueue_in(timedelta(minutes=5), jobs.add, 1, 1)
    q.enqueue_in(timedelta(seconds=60), jobs.add, 2, 2)
    assert 58 < registry.next_due() <= 60                # the earliest, measured on Redis's clock
    seconds, _ = r.time()
    r.zadd(registry.key, {"late": seconds - 30})         # due already: 0, never negative
    assert registry.next_due() == 0.0


def test_retry_pauses_follow_the_list_and_its_last_entry_repeats():
    intervals = Retry(max=5, interval=[1, 5, 30]).intervals
    assert [retry_delay(intervals, done) for done in range(5)] == [1, 5, 30, 30, 30]
    assert [retry_delay(Retry(max=2, interval=7).intervals, done) for done in range(2)] == [7, 7]
    assert retry_delay([], 3) == 0
    with pytest.raises(ValueError, match="at least 1"):
        Retry(max=0)
    with pytest.raises(ValueError, match=">= 0"):
        Retry(max=1, interval=[1, -1])


def test_depends_on_is_refused_instead_of_silently_passed_on(q):
    with pytest.raises(Exception, match="depends_on"):
        q.enqueue(jobs.add, 1, 1, depends_on="x")


def test_durations_as_rq_accepts_them(q):
    job = q.enqueue(jobs.add, 1, 1, job_timeout="1h", result_ttl="5m", failure_ttl="2d")
    assert (job.timeout, job.result_ttl, job.failure_ttl) == (3600, 300, 172800)
    with pytest.raises(Exception, match="invalid duration"):
        q.enqueue(jobs.add, 1, 1, job_timeout="soon")


def test_position_in_the_queue(q):
    first, second = q.enqueue(jobs.add, 1, 1), q.enqueue(jobs.add, 2, 2)
    assert (first.get_position(), second.get_position()) == (0, 1)


def test_a_live_id_is_refused_and_a_settled_one_replaced(q, r):
    from jobqueue import Worker
    from jobqueue.exceptions import DuplicateJobError
    from tests.conftest import FAST_TIMING
    q.enqueue(jobs.add, 1, 1, job_id="queued")
    q.enqueue_in(timedelta(hours=1), jobs.add, 2, 2, job_id="scheduled")
    for job_id in ("queued", "scheduled"):
        with pytest.raises(DuplicateJobError, match=f"{job_id} already queued, scheduled or running") as err:
            q.enqueue(jobs.add, 9, 9, job_id=job_id, unique=True)  # unique=True: accepted, as in RQ
        assert err.value.job_ids == [job_id]
    assert q.get_job_ids() == ["queued"] and Job.fetch("queued", r).args == [1, 1]   # neither pushed nor overwritten
    assert Job.fetch("scheduled", r).args == [2, 2] and q.scheduled_job_registry.count == 1
    # started: taken by a worker (the real fetch script), not finished
    q.backend.run("fetch", "w", 60, 1, "0", "req", "0", q.name)
    with pytest.raises(DuplicateJobError):
        q.enqueue(jobs.add, 9, 9, job_id="queued")
    r.flushall()
    q.enqueue(jobs.add, 1, 1, job_id="done")
    q.enqueue(jobs.fail, job_id="broken")
    Worker([q], connection=r, timing=FAST_TIMING).work(burst=True)
    again = q.enqueue(jobs.add, 5, 5, job_id="done")
    q.enqueue(jobs.add, 6, 6, job_id="broken")
    assert q.get_job_ids() == ["done", "broken"] and again.get_status() == JobStatus.QUEUED
    assert Job.fetch("done", r).args == [5, 5] and Job.fetch("broken", r).exc_info is None
    assert q.finished_job_registry.count == 0 and q.failed_job_registry.count == 0


def test_enqueue_many_enqueues_the_others_and_names_the_live_ids(q):
    from jobqueue.exceptions import DuplicateJobError
    q.enqueue(jobs.add, 0, 0, job_id="b")
    datas = [Queue.prepare_data(jobs.add, (i, i), job_id=j) for i, j in enumerate("abc")]
    with pytest.raises(DuplicateJobError) as err:
        q.enqueue_many(datas)
    assert err.value.job_ids == ["b"] and [j.id for j in err.value.enqueued] == ["a", "c"]
    assert q.get_job_ids() == ["b", "a", "c"] and Job.fetch("b", q.connection).args == [0, 0]
    with pytest.raises(DuplicateJobError) as err:   # twice in one call: nothing is written
        q.enqueue_many([Queue.prepare_data(jobs.add, (1, 1), job_id="x"),
                        Queue.prepare_data(jobs.add, (2, 2), job_id="x")])
    assert err.value.job_ids == ["x"] and "x" not in q.get_job_ids()


def test_enqueue_many_writes_the_applications_commands_with_the_jobs_or_nothing(q, r):
    datas = [Queue.prepare_data(jobs.add, (i, i), job_id=f"w{i}") for i in range(3)]
    q.enqueue_many(datas, also=[("HSET", "app:batch", "w0", "x", "w1", "y")])
    assert q.get_job_ids() == ["w0", "w1", "w2"] and r.hgetall("app:batch") == {b"w0": b"x", b"w1": b"y"}
    broken = [Queue.prepare_data(jobs.add, (i, i), job_id=f"v{i}") for i in range(3)]
    with pytest.raises(Exception, match="(?i)unknown command|EXECABORT"):
        q.enqueue_many(broken, also=[("HSET", "app:other", "v0", "x"), ("NO-SUCH-COMMAND",)])
    assert q.get_job_ids() == ["w0", "w1", "w2"] and not r.exists("app:other")   # the jobs did not go alone


def test_cancel_many_cancels_what_waits_or_runs_and_delete_many_removes_every_trace(q, r):
    from jobqueue import Worker
    from tests.conftest import FAST_TIMING
    ids = [q.enqueue(jobs.add, i, i, job_id=f"c{i}").id for i in range(1200)]
    Worker([q], connection=r, timing=FAST_TIMING).work(burst=True, max_jobs=1)  # c0 is finished
    assert q.cancel_many(ids + ["never-was"]) == 1199                  # the finished one and a stranger untouched
    assert q.count == 0 and q.canceled_job_registry.count == 1199
    assert Job.fetch("c0", r).get_status() == JobStatus.FINISHED
    assert q.delete_many(ids) == 1200
    assert not any(r.exists(Job.key_for(i)) for i in ("c0", "c1", "c1199"))
    assert q.canceled_job_registry.count == 0 and q.finished_job_registry.count == 0


def test_prepare_calls_makes_the_jobs_enqueue_many_makes(q, r):
    from jobqueue import Worker
    from jobqueue.exceptions import DuplicateJobError
    from tests.conftest import FAST_TIMING
    prepared = q.prepare_calls(jobs.add, [((1, 2), {}, "call-1"), ((3,), {"b": 4}, None)], job_timeout=7,
                               retry=Retry(max=2, interval=1), meta={"batch": 9})
    assert q.count == 0 and not r.exists(q.backend.keys.job("call-1"))  # built, not written
    q.enqueue_prepared(prepared, also=[("SET", "written-with-them", "1")])
    assert q.job_ids == prepared.ids and prepared.ids[0] == "call-1" and r.get("written-with-them") == b"1"
    one, two = Job.fetch_many(prepared.ids, r)
    assert (one.args, two.args, two.kwargs) == ([1, 2], [3], {"b": 4})
    assert (one.timeout, two.retries_left, two.retry_intervals, one.meta) == (7, 2, [1.0], {"batch": 9})
    assert one.description == "tests.jobs.add(1, 2)" and r.object("encoding", one.key) in (b"ziplist", b"listpack")
    with pytest.raises(DuplicateJobError):  # live ids are refused, as by enqueue_many
        q.enqueue_prepared(q.prepare_calls(jobs.add, [((5, 5), {}, "call-1")]))
    with pytest.raises(SerializationError):  # a bad argument fails while preparing
        q.prepare_calls(jobs.add, [((object(), 1), {}, None)])
    Worker([q], connection=r, timing=FAST_TIMING).work(burst=True)
    assert one.return_value() == 3 and two.return_value() == 7


def test_enqueue_once_leaves_out_a_job_whose_key_is_known_even_between_batches_in_flight_at_once(q, r):
    """Deduplication by a key of the caller's (the downloader's URL map):
    left out in the same atomic step as the writes, so two producers racing
    with the same keys enqueue each key once, and the hash holds its value."""
    first = q.prepare_calls(jobs.add, [((1, 1), {}, "a-1"), ((2, 2), {}, "a-2")])
    assert q.enqueue_once(first, "seen", [("k1", "v1"), ("k2", "")]) == 2
    again = q.prepare_calls(jobs.add, [((3, 3), {}, "b-2"), ((4, 4), {}, "b-3")])
    assert q.enqueue_once(again, "seen", [("k2", "other"), ("k3", "v3")]) == 1
    assert q.job_ids == ["a-1", "a-2", "b-3"] and not r.exists(q.backend.keys.job("b-2"))
    assert r.hgetall("seen") == {b"k1": b"v1", b"k2": b"", b"k3": b"v3"}

    keys = [f"url-{n}" for n in range(1200)]   # past one script call's chunk
    counts: list[int] = []

    def producer(tag: str) -> None:
        local = Queue("raced", connection=r)
        batch = local.prepare_calls(jobs.add, [((n, 0), {}, f"{tag}-{n}") for n in range(len(keys))])
        counts.append(local.enqueue_once(batch, "raced-seen", [(k, tag) for k in keys]))

    racers = [threading.Thread(target=producer, args=(tag,)) for tag in ("x", "y", "z")]
    for t in racers:
        t.start()
    for t in racers:
        t.join()
    raced = Queue("raced", connection=r)
    assert sum(counts) == len(keys) == raced.count == r.hlen("raced-seen")

    # a live id whose key is new is refused as by enqueue_many; the error says how many went in all the same
    with pytest.raises(DuplicateJobError) as refused:
        q.enqueue_once(q.prepare_calls(jobs.add, [((5, 5), {}, "a-1"), ((6, 6), {}, "c-4")]), "seen",
                       [("k9", ""), ("k4", "")])
    assert refused.value.job_ids == ["a-1"] and refused.value.count == 1 and "c-4" in q.job_ids


def test_a_batch_bigger_than_one_script_call_takes_is_written_whole_in_chunks(q, r):
    """No command grows with the batch: 20,000 jobs (more than a Lua call can
    push in one command) go in chunks, and all of them are queued, in order."""
    ids = [f"tiny-{n}" for n in range(20_000)]
    prepared = q.prepare_calls(jobs.add, [((n, 0), {}, i) for n, i in enumerate(ids)])
    q.enqueue_prepared(prepared)
    assert q.count == 20_000 and q.get_job_ids(0, 3) == ids[:3] and q.get_job_ids(19_997) == ids[-3:]
    assert q.enqueue_once(q.prepare_calls(jobs.add, [((n, 1), {}, f"again-{n}") for n in range(20_000)]),
                          "tiny-seen", [(f"k{n % 10_000}", "") for n in range(20_000)]) == 10_000
