"""Compact jobs (jobqueue/compact.py): what a waiting job costs Redis, and
that a compact job still reads as the whole call everywhere a user looks."""

import logging

from click.testing import CliRunner

from jobqueue import Job, JobStatus, Queue, Retry, Worker
from downloader.config import Settings
from downloader.keys import Keys
from downloader.runs import Runs
from jobqueue.cli import main as jobqueue_cli
from tests import jobs
from tests.conftest import wait_for
from tests.test_worker import FAST_TIMING

COMPACT = (b"ziplist", b"listpack")


def test_a_waiting_job_keeps_redis_compact_encoding_and_stores_nothing_redundant(q, r):
    long_arg = "x" * 1500  # far past the 64 bytes one value may have in a compact hash
    alone = q.enqueue(jobs.echo, long_arg, n=1)
    _, in_batch = q.enqueue_many([Queue.prepare_data(jobs.echo, (long_arg,), {"n": 2}) for _ in range(2)])
    for job in (alone, in_batch):
        stored = {k.decode(): v.decode() for k, v in r.hgetall(job.key).items()}
        assert r.object("encoding", job.key) in COMPACT
        assert max(len(v.encode()) for v in stored.values()) <= 64
        assert not {"id", "description", "created_at"} & set(stored)
        fetched = Job.fetch(job.id, r)
        assert fetched.args == [long_arg] and fetched.func_name == "tests.jobs.echo" and fetched.timeout == 180
        assert fetched.created_at == fetched.enqueued_at
    assert not {"func", "timeout"} & set(r.hgetall(in_batch.key))  # the batch's shared options hold them
    assert r.hget(alone.key, "func") == b"tests.jobs.echo"           # alone: its own (no extra command)


def test_options_many_jobs_share_are_stored_once(q, r):
    q.enqueue_many([Queue.prepare_data(jobs.add, (i, i), retry=Retry(max=2, interval=[1, 2])) for i in range(300)])
    other, _ = q.enqueue_many([Queue.prepare_data(jobs.add, (1, 1), job_timeout=77)] * 2)
    q.enqueue(jobs.add, 1, 1, job_timeout=78)  # alone: its options in its own hash
    assert len(r.keys(q.backend.keys.shared("*"))) == 2
    assert Job.fetch(other.id, r).timeout == 77
    assert {j.retries_left for j in q.jobs[:300]} == {2} and q.jobs[0].retry_intervals == [1, 2]
    assert not r.hexists(q.jobs[0].key, "created_at")  # a batch's jobs too store one time stamp


def test_a_compact_job_shows_its_whole_call_in_fetch_info_and_the_workers_log(q, r, redis_server, workers, tmp_path,
                                                                              caplog):
    marker = tmp_path / "started"
    job = q.enqueue(jobs.record, str(marker), "a-tag-of-its-own", 0)
    call = f"tests.jobs.record({str(marker)!r}, 'a-tag-of-its-own', 0)"
    assert Job.fetch(job.id, r).description == call == Job.fetch(job.id, r).to_dict()["description"]
    with caplog.at_level(logging.INFO, logger="jobqueue.worker"):
        Worker([q], connection=r, timing=FAST_TIMING).work(burst=True)
    assert any(call in m for m in caplog.messages), caplog.messages
    blocker = q.enqueue(jobs.record, str(tmp_path / "b"), "long-running", 30)
    workers.start(redis_server.url)
    wait_for(lambda: blocker.get_status() == JobStatus.STARTED, message="job started")
    out = CliRunner().invoke(jobqueue_cli, ["info"], env={"JOBQUEUE_REDIS_URL": redis_server.url})
    assert f"running tests.jobs.record({str(tmp_path / 'b')!r}, 'long-running', 30)" in out.output, out.output


def test_a_job_in_the_older_whole_layout_still_runs(q, r):
    """Jobs written before jobs were compact (every field in their own hash)."""
    r.hset(q.backend.keys.job("old-1"), mapping={
        "id": "old-1", "func": "tests.jobs.add", "data": "[[2,3],{}]", "serializer": "json",
        "description": "add them", "origin": q.name, "status": "queued", "created_at": "2026-11-01T00:00:00Z",
        "enqueued_at": "2026-11-01T00:00:00Z", "timeout": "180", "result_ttl": "500", "failure_ttl": "600"})
    r.rpush(q.key, "old-1")
    Worker([q], connection=r, timing=FAST_TIMING).work(burst=True)
    old = Job.fetch("old-1", r)
    assert old.get_status() == JobStatus.FINISHED and old.return_value() == 5 and old.description == "add them"


def test_a_runs_download_job_carries_its_url_and_run_and_nothing_the_run_shares(r, tmp_path):
    url = "https://images.example.org/" + "a/" * 80 + "photo.jpg"  # 200 characters
    run_id, _ = Runs(r).create([url], "test", Settings(queue="compact", dir=str(tmp_path), max_size=1234))
    (job,) = Queue("compact", connection=r).jobs
    assert job.args == [url, run_id] and job.kwargs == {}
    assert r.object("encoding", job.key) in COMPACT and not r.hexists(job.key, "created_at")
    options = Runs(r).job_options(run_id)
    assert options["max_size"] == 1234 and options["dir"]


def test_a_download_whose_run_is_gone_fails_at_once_and_says_so(r, tmp_path):
    run_id, _ = Runs(r).create(["http://127.0.0.1:9/a.png"], "test", Settings(queue="gone", dir=str(tmp_path)))
    (job,) = Queue("gone", connection=r).jobs
    r.delete(Keys().run(run_id))
    Worker([Queue("gone", connection=r)], connection=r, timing=FAST_TIMING).work(burst=True)
    job.refresh()
    assert job.get_status() == JobStatus.FAILED and f"run {run_id} is gone" in job.exc_info
    assert job.retries_left == Settings().retries  # not retried: nothing would make it work


def test_a_batch_jobs_used_retries_are_its_own_not_its_shared_options(q, r, tmp_path):
    """The batch's shared options say retries_left=2; each job's own count,
    written as it uses them, wins: both fail after three attempts."""
    batch = q.enqueue_many([Queue.prepare_data(jobs.fail_until, (str(tmp_path / f"n{i}"), 99), retry=Retry(max=2))
                            for i in range(2)])
    Worker([q], connection=r, timing=FAST_TIMING).work(burst=True, max_jobs=10)  # 10: never-ending retries stop
    for job in batch:
        job.refresh()
        assert job.get_status() == JobStatus.FAILED and job.retries_left == 0 and job.attempt == 3


def test_shared_options_outlive_another_queues_jobs_and_an_altered_copy_is_mended(r):
    """One shared hash serves every queue whose jobs have those options, so
    emptying or deleting one queue leaves it for the others; written again
    by the next batch, a hash someone altered is mended."""
    left, kept = Queue("left", connection=r), Queue("kept", connection=r)
    options = {"job_timeout": 55, "retry": Retry(max=1)}
    left.enqueue_many([Queue.prepare_data(jobs.add, (1, 1), **options)] * 2)
    waiting = kept.enqueue_many([Queue.prepare_data(jobs.add, (2, 2), **options)] * 2)
    (key,) = r.keys(kept.backend.keys.shared("*"))
    left.delete()
    assert r.hget(key, "timeout") == b"55"
    r.hset(key, "timeout", "1")                                       # someone alters it
    kept.enqueue_many([Queue.prepare_data(jobs.add, (3, 3), **options)] * 2)
    assert r.hget(key, "timeout") == b"55"                            # mended by the next batch
    Worker([kept], connection=r, timing=FAST_TIMING).work(burst=True)
    assert [job.return_value() for job in waiting] == [4, 4]
