"""A run's lifecycle, as users drive it: an enqueue that is interrupted and
resumed, cancel, delete, expiry, prune, and jobs that vanish under a run.
Real Redis, real worker and producer processes, real HTTP servers."""

import json
import re
import signal
import time
from pathlib import Path

from PIL import Image

from downloader import lifecycle
from downloader.config import Settings
from downloader.keys import Keys
from downloader.producer import BATCH, Producer
from downloader.runs import job_id
from downloader.runs import Runs
from jobqueue import Job, JobStatus, Queue
from tests.conftest import wait_for
from tests.forwarder import Forwarder
from tests.http_server import MisbehavingServer
from tests.test_downloader_cli import popen
from tests.test_downloader_e2e import downloader, run_id_of

KEYS = Keys()


def run_keys(r, run_id):
    """Every key in Redis that belongs to the run (its jobs excluded)."""
    return sorted(k.decode() for k in r.scan_iter(match=f"{KEYS.run(run_id)}*"))


def jobs_of(r, run_id):
    return sorted(k.decode() for k in r.scan_iter(match=f"*job:dl-{run_id}-*"))


def queued_ids(r, queue):
    return [i.decode() for i in r.lrange(Queue(queue, connection=r).key, 0, -1)]


def the_run(r):
    runs = r.zrange(KEYS.runs, 0, -1)
    return runs[-1].decode() if runs else None


def stalled_mid_enqueue(redis_server, r, tmp_path, queue, links=5000, query="", base="http://127.0.0.1:9", **env):
    """A `fetch --no-wait` of ``links`` links whose own link to Redis stalls
    once its first batch is in (the next batch hangs): (process, relay, links file)."""
    path = tmp_path / "links.txt"
    path.write_text("\n".join(f"{base}/img/{n}.png" for n in range(links)) + "\n")
    relay = Forwarder(redis_server.port)
    env["DOWNLOADER_REDIS_URL"] = relay.url(query=query)
    fetch = popen(redis_server, "fetch", "--links", str(path), "--no-wait", "--queue", queue, "--dir",
                  str(tmp_path / "dl"), **env)
    wait_for(lambda: the_run(r) and r.hlen(KEYS.urls(the_run(r))), message="the first batch enqueued")
    relay.stall()
    time.sleep(0.5)  # (with a lease of 1 s, its renewal is stuck on the stalled link by now too)
    return fetch, relay, path


def test_an_interrupted_enqueue_says_how_far_it_got_and_the_same_fetch_completes_it(redis_server, r, tmp_path):
    fetch, relay, links = stalled_mid_enqueue(redis_server, r, tmp_path, "resume", 20_000,
                                              DOWNLOADER_PRODUCER_LEASE="1")
    urls = links.read_text().split()                              # never downloaded here: no worker listens
    fetch.kill()                                                  # the producer dies mid-enqueue
    fetch.wait()
    relay.close()
    run_id = the_run(r)
    enqueued = r.hlen(KEYS.urls(run_id))
    assert 0 < enqueued < len(urls)
    assert len(queued_ids(r, "resume")) == enqueued               # the run counts exactly the jobs that exist

    wait_for(lambda: "interrupted" in downloader(redis_server, "status", run_id).stdout, timeout=10,
             message="the lapsed lease read as interrupted")
    status = downloader(redis_server, "status", run_id).stdout
    assert f"interrupted while enqueuing: {enqueued} link(s) enqueued" in status, status
    assert f"downloader fetch --resume {run_id}" in status
    assert json.loads(downloader(redis_server, "status", run_id, "--json").stdout)["state"] == "enqueuing"
    assert "interrupted" in downloader(redis_server, "runs").stdout

    again = downloader(redis_server, "fetch", "--links", str(links), "--no-wait", "--queue", "resume", "--dir",
                       str(tmp_path / "dl"))
    assert again.returncode == 0, again.stderr
    assert f"Run {run_id} read this source" in again.stderr and "completing it" in again.stderr
    assert f"Run {run_id} resumed: {len(urls) - enqueued} more download(s) enqueued" in again.stdout
    queued = queued_ids(r, "resume")
    assert len(queued) == len(set(queued)) == len(urls)           # every link once: none twice, none lost
    assert set(queued) == {job_id(run_id, url) for url in urls}
    assert r.zcard(KEYS.runs) == 1                                # no second run
    progress = Runs(r).progress(run_id)
    assert (progress.state, progress.total, progress.expected) == ("enqueued", len(urls), len(urls))


def test_fetch_resume_finishes_an_interrupted_run_and_a_watch_never_waits_for_what_was_not_enqueued(
        redis_server, r, tmp_path):
    web = MisbehavingServer()
    folder = tmp_path / "dl"
    links = tmp_path / "links.txt"
    urls = [f"{web.url}/img/{n}.png" for n in range(30)]
    links.write_text("\n".join(urls) + "\n")
    runs = Runs(r)
    settings = Settings(queue="resume2", dir=str(folder))
    with Producer.new(runs, f"links file {links}", {"kind": "links", "path": str(links)}, settings, 30) as producer:
        producer.add(urls[:10])                                   # and then the producer stopped (no seal)
    run_id = producer.run_id
    worker = popen(redis_server, "work", "--queue", "resume2", "--dir", str(folder))
    try:
        watched = downloader(redis_server, "status", run_id, "--watch", timeout=60)
        assert watched.returncode == 1                            # it ends: the other 20 jobs do not exist
        assert "done          10" in watched.stdout and "interrupted while enqueuing: 10 of 30" in watched.stdout
        worker.terminate()
        worker.wait()

        resumed = downloader(redis_server, "fetch", "--resume", run_id, "--workers", "2", timeout=60)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert "20 more download(s) enqueued" in resumed.stdout and "(30 in all)" in resumed.stdout
        assert "done          30" in resumed.stdout and "interrupted" not in resumed.stdout
        files = sorted(folder.iterdir())
        assert len(files) == 30 and not any(f.suffix in (".part", ".meta") for f in files)
        for f in files:
            Image.open(f).verify()
        assert all(n == 1 for path, n in web.hits.items())       # each image fetched once in all
        done = downloader(redis_server, "fetch", "--resume", run_id, "--no-wait")
        assert done.returncode == 0 and "0 more download(s)" in done.stdout
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        web.stop()


def test_resume_refuses_a_run_another_producer_holds_and_names_what_it_needs(redis_server, r, tmp_path):
    runs = Runs(r)
    settings = Settings(queue="busy-run", dir=str(tmp_path))
    with Producer.new(runs, "stdin", {"kind": "stdin"}, settings, 3) as producer:
        held = downloader(redis_server, "fetch", "--resume", producer.run_id, "--links", "-",
                          input="http://h/a.png\n")
        assert held.returncode == 1 and "is being enqueued by another `downloader fetch` right now" in held.stderr
    needs = downloader(redis_server, "fetch", "--resume", producer.run_id)
    assert needs.returncode == 2 and "read its links from stdin: give them again with --links -" in needs.stderr
    nothing = downloader(redis_server, "fetch", "--resume", "20990101-000000-dead")
    assert nothing.returncode == 1 and "does not exist" in nothing.stderr


def test_cancel_stops_waiting_and_running_downloads_and_the_worker_carries_on(redis_server, r, tmp_path):
    # 1.4 MB in 4 KiB steps, 35 s each: none can end before the cancel, however loaded the machine
    web = MisbehavingServer(slow_delay=0.1, slow_size=760)
    folder = tmp_path / "dl"
    runs = Runs(r)
    urls = [f"{web.url}/slow/{n}.png" for n in range(12)]
    run_id, _ = runs.create(urls, "test", Settings(queue="cancel", dir=str(folder)))
    worker = popen(redis_server, "work", "--queue", "cancel", "--dir", str(folder), "-c", "3")
    try:
        watcher = popen(redis_server, "status", run_id, "--watch")
        wait_for(lambda: len(list(folder.glob("*.part"))) == 3 and all(p.stat().st_size > 50_000
                                                                       for p in folder.glob("*.part")),
                 message="three downloads under way")
        out = downloader(redis_server, "cancel", run_id)
        assert out.returncode == 0 and f"Run {run_id} canceled: 12 download(s)" in out.stdout, out.stdout
        assert queued_ids(r, "cancel") == []                       # nothing of it waits ...
        wait_for(lambda: not list(folder.glob("*.part")), timeout=10, message="running ones stopped, parts gone")
        try:
            wait_for(lambda: len(web.aborted) >= 3, timeout=30, message="the three under way hung up mid-body")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: aborted {web.aborted}, requests {dict(web.hits)}") from None
        assert len(web.hits) == 3                                  # and no other one started
        watched, _ = watcher.communicate(timeout=15)              # a watch of it ends, and says why
        assert watcher.returncode == 1 and "canceled: 12 download(s) will not run" in watched
        assert not any(folder.iterdir())                           # nothing half-written became a file
        statuses = {Job.fetch(job_id(run_id, url), connection=r).get_status() for url in urls}
        assert statuses == {JobStatus.CANCELED}
        status = downloader(redis_server, "status", run_id)
        assert "canceled: 12 download(s) will not run" in status.stdout
        assert downloader(redis_server, "retry", run_id).returncode == 1   # a canceled run is not retried

        later, _ = runs.create([f"{web.url}/img/after.png"], "test", Settings(queue="cancel", dir=str(folder)))
        wait_for(lambda: runs.progress(later).complete, message="the worker takes the next run")
        assert worker.poll() is None
    finally:
        worker.terminate()
        worker.wait()
        web.stop()


def test_cancel_while_a_fetch_is_enqueueing_withdraws_the_batch_it_was_writing(redis_server, r, tmp_path):
    fetch, relay, _ = stalled_mid_enqueue(redis_server, r, tmp_path, "cancel-early")   # a batch on its way ...
    try:
        run_id = the_run(r)
        out = downloader(redis_server, "cancel", run_id)
        assert out.returncode == 0, out.stderr
        relay.heal()                                              # the batch lands after the cancel
        _, stderr = fetch.communicate(timeout=30)
    finally:
        relay.close()
    assert fetch.returncode == 1 and f"run {run_id} was canceled while it was being enqueued" in stderr, stderr
    assert queued_ids(r, "cancel-early") == []                    # no job of it waits
    ids = [job_id for chunk in Runs(r).job_ids(run_id) for _, job_id in chunk]
    assert 0 < len(ids) < 5000
    assert {job.get_status(refresh=False) for job in Job.fetch_many(ids, connection=r)} == {JobStatus.CANCELED}


def test_delete_leaves_no_trace_of_the_run_in_redis_and_keeps_its_files(redis_server, r, tmp_path):
    web = MisbehavingServer()
    folder = tmp_path / "dl"
    runs = Runs(r)
    urls = [f"{web.url}/img/a.png", f"{web.url}/missing.png", f"{web.url}/slow/c.png"]
    run_id, _ = runs.create(urls, "test", Settings(queue="delete", dir=str(folder)))
    worker = popen(redis_server, "work", "--queue", "delete", "--dir", str(folder))
    try:
        wait_for(lambda: runs.progress(run_id).complete, timeout=30, message="the run complete")
        other, _ = runs.create([f"{web.url}/img/other.png"], "other", Settings(queue="delete", dir=str(folder)))
        wait_for(lambda: runs.progress(other).complete, message="another run complete")
        out = downloader(redis_server, "delete", run_id)
        assert out.returncode == 0 and f"Run {run_id} deleted (3 job record(s) removed" in out.stdout, out.stdout
        assert jobs_of(r, run_id) == []
        assert run_keys(r, run_id) == [KEYS.run(run_id)]           # only a tombstone, which expires
        assert r.hgetall(KEYS.run(run_id)) == {b"state": b"deleted"} and 0 < r.ttl(KEYS.run(run_id)) <= 86400
        assert run_id not in downloader(redis_server, "runs").stdout and other in downloader(redis_server, "runs").stdout
        gone = downloader(redis_server, "status", run_id)
        assert gone.returncode == 1 and f"run {run_id!r} was deleted" in gone.stderr
        assert len(list(folder.iterdir())) == 3                    # files stay: a.png, c.png, other.png
        assert runs.progress(other).done == 1 and jobs_of(r, other)  # another run untouched
    finally:
        worker.terminate()
        worker.wait()
        web.stop()


def test_a_runs_index_of_another_type_keeps_a_deleted_runs_records_until_it_is_gone(redis_server, r, tmp_path):
    """The records, the tombstone and the index go together (forget.lua): an
    index someone replaced refuses the delete before any record is touched,
    and the same delete works once it is gone."""
    runs = Runs(r)
    run_id, _ = runs.create(["http://127.0.0.1:9/x.png"], "test", Settings(queue="forget", dir=str(tmp_path)))
    r.rename(KEYS.runs, "saved-index")
    r.rpush(KEYS.runs, "someone else's")
    out = downloader(redis_server, "delete", run_id)
    assert out.returncode == 1 and KEYS.runs in out.stderr and "delete it" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert r.hget(KEYS.run(run_id), "id") == run_id.encode() and r.hlen(KEYS.urls(run_id)) == 1  # records kept
    r.delete(KEYS.runs)
    r.rename("saved-index", KEYS.runs)
    again = downloader(redis_server, "delete", run_id)
    assert again.returncode == 0, again.stderr
    assert run_keys(r, run_id) == [KEYS.run(run_id)] and r.zscore(KEYS.runs, run_id) is None


def test_a_complete_run_expires_after_keep_runs_and_not_a_moment_while_it_is_incomplete(r):
    runs = Runs(r)
    urls = ["http://h/a.png", "http://h/b.png"]
    run_id, _ = runs.create(urls, "test", Settings(queue="expiry", keep_runs=60))
    Queue("expiry", connection=r).empty()
    runs.mark(run_id, urls[0], "done", 10)
    assert [r.ttl(k) for k in run_keys(r, run_id)] == [-1] * 3     # incomplete (run, urls, done): kept for ever
    runs.mark(run_id, urls[1], "failed", reason="HTTP 500")
    keys = run_keys(r, run_id)
    assert len(keys) == 5 and all(0 < r.ttl(k) <= 60 for k in keys), {k: r.ttl(k) for k in keys}
    runs.mark(run_id, urls[1], "pending")                          # `retry` made it incomplete again
    assert [r.ttl(k) for k in run_keys(r, run_id)] == [-1] * 3
    runs.mark(run_id, urls[1], "done", 10)
    assert all(0 < r.ttl(k) <= 60 for k in run_keys(r, run_id))

    short, _ = runs.create(urls, "test", Settings(queue="expiry", keep_runs=1))
    runs.mark(short, urls[0], "done", 1)
    runs.mark(short, urls[1], "skipped")
    time.sleep(1.6)
    assert run_keys(r, short) == []
    assert [p.run_id for p in runs.all()] == [run_id]              # the index forgets it too
    assert r.zscore(KEYS.runs, short) is None
    runs.mark(short, urls[0], "done", 1)                           # a late job of it leaves nothing behind
    assert run_keys(r, short) == []
    forever, _ = runs.create(urls, "test", Settings(queue="expiry", keep_runs=0))
    runs.mark(forever, urls[0], "done", 1)
    runs.mark(forever, urls[1], "done", 1)
    assert [r.ttl(k) for k in run_keys(r, forever)] == [-1] * 3   # keep_runs = 0: until deleted


def test_prune_deletes_complete_and_canceled_runs_and_keeps_the_others(redis_server, r, tmp_path):
    runs = Runs(r)
    settings = Settings(queue="prune", dir=str(tmp_path))
    complete, _ = runs.create(["http://h/a.png"], "test", settings)
    runs.mark(complete, "http://h/a.png", "done", 5)
    waiting, _ = runs.create(["http://h/b.png"], "test", settings)
    canceled, _ = runs.create(["http://h/c.png"], "test", settings)
    lifecycle.cancel(runs, canceled)
    with Producer.new(runs, "test", {"kind": "api"}, settings, 2) as producer:
        producer.add(["http://h/d.png"])                           # interrupted: resumable, so kept
    kept = downloader(redis_server, "runs", "--prune", "--older-than", "1h")
    assert kept.returncode == 0 and "Pruned 0 complete run(s)." in kept.stdout
    bad = downloader(redis_server, "runs", "--prune", "--older-than", "soon")
    assert bad.returncode == 2 and "not a duration" in bad.stderr
    out = downloader(redis_server, "runs", "--prune")
    assert out.returncode == 0 and "Pruned 2 complete run(s)" in out.stdout
    assert sorted(p.run_id for p in runs.all()) == sorted([waiting, producer.run_id])
    assert jobs_of(r, complete) == [] and jobs_of(r, canceled) == [] and jobs_of(r, waiting)


def test_a_run_whose_jobs_vanished_settles_them_as_failed_and_retry_runs_them(redis_server, r, tmp_path):
    web = MisbehavingServer()
    folder = tmp_path / "dl"
    runs = Runs(r)
    urls = [f"{web.url}/img/{n}.png" for n in range(4)]
    try:
        run_id, _ = runs.create(urls, "test", Settings(queue="vanish", dir=str(folder)))
        assert Queue("vanish", connection=r).empty() == 4          # `jobqueue empty`: the jobs are gone
        watched = downloader(redis_server, "status", run_id, "--watch", timeout=30)
        assert watched.returncode == 1 and "failed         4" in watched.stdout, watched.stdout
        assert "have no job any more" in watched.stderr
        listed = downloader(redis_server, "failed", run_id)
        assert "its job is gone (its queue was emptied, or the job deleted)" in listed.stdout
        again = downloader(redis_server, "retry", run_id, "--workers", "1", timeout=60)
        assert again.returncode == 0 and "done           4" in again.stdout, again.stdout + again.stderr
        assert len(list(folder.iterdir())) == 4
    finally:
        web.stop()


def test_ctrl_c_while_enqueuing_exits_130_and_says_how_to_resume_even_with_redis_stalled(redis_server, r, tmp_path):
    fetch, relay, _ = stalled_mid_enqueue(redis_server, r, tmp_path, "ctrl-c", DOWNLOADER_PRODUCER_LEASE="1",
                                          query="socket_connect_timeout=60&socket_timeout=60")  # no early way out
    try:
        fetch.send_signal(signal.SIGINT)
        _, stderr = fetch.communicate(timeout=20)                 # no hang on the stalled link: it hands its lease
                                                                  # back for 1 s at most (a call would hang 60 s)
    finally:
        relay.close()
    run_id = the_run(r)
    assert fetch.returncode == 130 and "Traceback" not in stderr, stderr
    said = re.search(rf"Interrupted while enqueuing run {run_id} \((\d+) new download\(s\) enqueued\)", stderr)
    assert said, stderr
    enqueued = r.hlen(KEYS.urls(run_id))                          # a batch whose reply the stall held back
    assert enqueued - BATCH <= int(said[1]) <= enqueued           # is not counted
    assert f"downloader fetch --resume {run_id}" in stderr
    wait_for(lambda: Runs(r).progress(run_id).interrupted, timeout=5, message="the run reads as interrupted")


def test_workers_start_on_the_first_batch_while_the_rest_is_read(redis_server, r, tmp_path):
    web = MisbehavingServer()
    fetch, relay, _ = stalled_mid_enqueue(redis_server, r, tmp_path, "stream", 600, base=web.url,
                                          DOWNLOADER_PRODUCER_BATCH="50")  # twelve batches, two in flight at once
    worker = popen(redis_server, "work", "--quiet", "--queue", "stream", "--dir", str(tmp_path))
    try:
        run_id = the_run(r)
        wait_for(lambda: Runs(r).progress(run_id).done >= 10, message="downloads while the producer is stuck")
        assert Runs(r).progress(run_id).state == "enqueuing" and r.hlen(KEYS.urls(run_id)) < 600
        relay.heal()
        assert fetch.wait(timeout=30) == 0
        wait_for(lambda: Runs(r).progress(run_id).complete, timeout=60, message="the whole run")
    finally:
        relay.close()
        worker.terminate()
        worker.wait()
        web.stop()


def test_reading_holds_one_batch_at_a_time_however_long_the_source(r, tmp_path):
    import tracemalloc
    from downloader.cli.reading import Plan, batches
    from downloader.sources import Item

    class Endless:
        description, spec = "a long links file", {"kind": "links"}

        def items(self):
            for n in range(300_000):
                yield Item(f"https://example.com/a/long/path/to/image-{n:07d}.jpg")

    plan = Plan("a long links file", {})
    tracemalloc.start()
    try:
        sizes = [len(batch) for batch in batches(Endless(), {"archive": ""}, Runs(r), plan)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert plan.read == 300_000 and sizes == [BATCH] * (300_000 // BATCH)
    assert peak < 5 * 2**20, peak          # 300,000 URLs held at once would take some 60 MB


def test_retry_reenqueues_more_vanished_jobs_than_a_batch_each_once(r, tmp_path):
    from downloader import repair
    runs = Runs(r)
    urls = [f"http://127.0.0.1:9/img/v{n}.png" for n in range(BATCH + 250)]
    run_id, _ = runs.create(urls, "test", Settings(queue="many-gone", dir=str(tmp_path)))
    assert Queue("many-gone", connection=r).empty() == BATCH + 250
    assert repair.settle_vanished(runs, run_id) == BATCH + 250 and runs.progress(run_id).failed == BATCH + 250
    assert len(repair.retry(runs, run_id, Settings())) == BATCH + 250
    queued = queued_ids(r, "many-gone")
    assert len(queued) == len(set(queued)) == BATCH + 250 and runs.progress(run_id).failed == 0


def test_a_link_repeated_across_batches_and_across_a_resume_is_enqueued_once(redis_server, r, tmp_path):
    urls = [f"http://127.0.0.1:9/img/d{n}.png" for n in range(500)]
    links = tmp_path / "links.txt"
    links.write_text("\n".join(urls + urls[::-1] + urls[:250]) + "\n")      # each link 2-3 times, batches apart
    out = downloader(redis_server, "fetch", "--links", str(links), "--no-wait", "--queue", "dedup", "--dir",
                     str(tmp_path / "dl"))
    assert out.returncode == 0 and "500 download(s) enqueued" in out.stdout and "750 duplicate(s)" in out.stdout
    run_id = run_id_of(out.stdout)
    again = downloader(redis_server, "fetch", "--resume", run_id, "--no-wait")
    assert again.returncode == 0 and "0 more download(s) enqueued" in again.stdout and "(500 in all)" in again.stdout
    queued = queued_ids(r, "dedup")
    assert len(queued) == len(set(queued)) == 500 and r.hlen(KEYS.urls(run_id)) == 500
