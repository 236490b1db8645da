"""A run's bookkeeping: what mark.lua keeps true, and what progress costs."""

import json

import pytest

from downloader.config import Settings
from downloader.runs import MARK, Runs
from jobqueue import Queue, Worker
from tests.conftest import FAST_TIMING, recording_client
from tests.http_server import MisbehavingServer


@pytest.fixture
def run(r):
    runs = Runs(r)
    run_id, urls = runs.create(["http://h/a.png", "http://h/b.png"], "test", Settings(queue="marks"))
    return runs, run_id, urls


def test_bytes_of_a_url_are_counted_once_however_often_it_is_done(run):
    runs, run_id, (a, b) = run
    runs.mark(run_id, a, "done", 100)
    runs.mark(run_id, a, "done", 100)  # the at-least-once queue ran the job again
    runs.mark(run_id, b, "done", 7)
    p = runs.progress(run_id)
    assert (p.done, p.bytes) == (2, 107)


def test_a_done_url_is_never_demoted_to_skipped(run):
    runs, run_id, (a, _) = run
    runs.mark(run_id, a, "done", 100)
    runs.mark(run_id, a, "skipped")     # the re-run found the file it had itself written
    p = runs.progress(run_id)
    assert (p.done, p.skipped, p.bytes) == (1, 0, 100)


def test_a_url_is_in_one_state_at_a_time_and_a_failure_keeps_its_reason_until_it_changes(run):
    runs, run_id, (a, b) = run
    runs.mark(run_id, a, "failed", reason="HTTP 503")
    runs.mark(run_id, b, "skipped")
    assert runs.failures(run_id) == {a: "HTTP 503"}
    runs.mark(run_id, a, "pending")     # retried
    assert runs.failures(run_id) == {} and runs.progress(run_id).failed == 0
    runs.mark(run_id, a, "done", 5)
    runs.mark(run_id, b, "failed", reason="HTTP 404")
    p = runs.progress(run_id)
    assert (p.done, p.skipped, p.failed, p.settled) == (1, 0, 1, 2) and p.complete


def test_one_call_marks_several_runs_and_each_ends_as_if_marked_one_by_one(r):
    """A worker's round trip hands the marks of all its jobs, of any runs, to
    one mark.lua call, which reads and writes what is per run once."""
    runs = Runs(r)
    first, (a, b) = runs.create(["http://h/a.png", "http://h/b.png"], "test", Settings(queue="marks"))
    second, (c,) = runs.create(["http://h/c.png"], "test", Settings(queue="marks"))
    key = {run_id: runs.keys_of(run_id).run(run_id) for run_id in (first, second)}
    marks = [(key[first], a, "done", 100, ""), (key[second], c, "failed", 0, "HTTP 404"),
             (key[first], a, "done", 100, ""), (key[first], b, "done", 7, "")]
    MARK(r, json.dumps(marks), keys=(key[first],))
    one, two = runs.progress(first), runs.progress(second)
    assert (one.done, one.bytes, one.complete) == (2, 107, True)
    assert (two.failed, two.complete) == (1, True) and runs.failures(second) == {c: "HTTP 404"}
    for run_id in (first, second):  # complete: both carry their expiry and the moment they completed
        assert r.ttl(key[run_id]) > 0 and r.hexists(key[run_id], "completed")


def test_progress_marks_cost_the_downloads_no_round_trip_of_their_own(redis_server, r, tmp_path):
    """A download job runs on a slot thread; its marks must ride on the worker's
    own round trip (main thread), so no request may leave from a slot thread."""
    web = MisbehavingServer()
    client, senders = recording_client(redis_server.url)
    try:
        runs = Runs(r)
        urls = [f"{web.url}/img/rt{i}.png" for i in range(12)]
        run_id, _ = runs.create(urls, "test", Settings(queue="roundtrips", dir=str(tmp_path)))
        runs.create(urls[:4], "again", Settings(queue="roundtrips", dir=str(tmp_path)))  # skipped ones mark too
        worker = Worker([Queue("roundtrips", connection=client)], connection=client, concurrency=4,
                        timing=FAST_TIMING, allowed_modules=["downloader."])
        worker.work(burst=True)
        assert runs.progress(run_id).done == 12 and runs.progress(runs.latest()).skipped == 4
        slots = [name for name in senders if name.startswith("slot-")]
        # only the host gate's leases (a batch of permits each) and each run's options, once; no mark
        assert senders and len(slots) <= 3 + 2, slots
    finally:
        web.stop()
        client.close()
