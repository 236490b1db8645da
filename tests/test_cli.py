"""The jobqueue command as a user types it."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import redis
from click.testing import CliRunner

from jobqueue import Job, JobStatus, Queue
from jobqueue.cli import main
from tests import jobs
from tests.conftest import ROOT, wait_for


def run(redis_server, *args, input=None):
    return CliRunner().invoke(main, list(args), env={"JOBQUEUE_REDIS_URL": redis_server.url}, input=input)


def test_enqueue_then_burst_worker_then_job(redis_server, r, workers):
    out = run(redis_server, "enqueue", "tests.jobs.echo", "text", ":3", "flag=:true", "--queue", "q1")
    assert out.exit_code == 0, out.output
    job_id = out.output.strip()
    proc = workers.start(redis_server.url, "q1", "--burst")
    assert proc.wait(timeout=20) == 0
    log = workers.output(proc)
    assert f"q1: tests.jobs.echo('text', 3, flag=True) ({job_id})" in log
    assert f"q1: Job OK ({job_id})" in log
    shown = json.loads(run(redis_server, "job", job_id).output)
    assert shown["status"] == "finished" and shown["result"] == {"args": ["text", 3], "kwargs": {"flag": True}}


def test_info_shows_counts_and_busy_workers(redis_server, r, workers, tmp_path):
    q = Queue(connection=r)
    q.enqueue(jobs.fail)
    proc = workers.start(redis_server.url, "--burst")
    proc.wait(timeout=20)
    blocker = q.enqueue(jobs.record, str(tmp_path / "x"), "b", 30)
    q.enqueue(jobs.add, 1, 1)
    worker = workers.start(redis_server.url, "--name", "w-busy")
    wait_for(lambda: blocker.get_status() == JobStatus.STARTED, message="job started")
    out = run(redis_server, "info")
    assert out.exit_code == 0
    assert "default" in out.output and "w-busy (busy" in out.output
    assert "running tests.jobs.record" in out.output and blocker.id in out.output
    row = next(line.split() for line in out.output.splitlines() if line.startswith("default"))
    assert row[1:] == ["1", "1", "0", "0", "1", "0"]  # queued started scheduled finished failed canceled
    data = json.loads(run(redis_server, "info", "--json").output)
    assert data["workers"][0]["state"] == "busy" and data["queues"][0]["failed"] == 1
    worker.send_signal(signal.SIGKILL)


def test_requeue_all_and_by_id(redis_server, r, workers):
    q = Queue(connection=r)
    a, b = q.enqueue(jobs.fail), q.enqueue(jobs.fail)
    workers.start(redis_server.url, "--burst").wait(timeout=20)
    out = run(redis_server, "requeue", a.id)
    assert out.exit_code == 0 and "Requeued 1 job(s)" in out.output
    out = run(redis_server, "requeue", "--all")
    assert "Requeued 1 job(s)" in out.output
    assert set(q.get_job_ids()) == {a.id, b.id}
    out = run(redis_server, "requeue", "unknown-id")
    assert out.exit_code == 1 and "unknown-id" in out.output
    assert run(redis_server, "requeue").exit_code == 2


def test_empty_queue(redis_server, r):
    q = Queue("e", connection=r)
    for i in range(3):
        q.enqueue(jobs.add, i, i)
    out = run(redis_server, "empty", "e")
    assert out.exit_code == 0 and "3 job(s) removed from e" in out.output and len(q) == 0


@pytest.mark.parametrize("args,message", [
    (["enqueue", "nodots"], "dotted path"),
    (["enqueue", "tests.jobs.add", ":{bad"], "not valid JSON"),
    (["job", "nope"], "no job with id 'nope'"),
    (["info", "q\udcff"], "is not UTF-8"),          # undecodable bytes of an argument, as Python reads them
    (["enqueue", "--job-id", "j\udcff", "tests.jobs.add", "1", "2"], "is not UTF-8"),
    (["empty", "q\udcff"], "UTF-8 name"),
    (["job", "j\udcff"], "is not UTF-8"),
])
def test_bad_input_is_a_message_and_exit_code(redis_server, r, args, message):
    out = run(redis_server, *args)
    assert out.exit_code != 0 and message in out.output
    assert "Traceback" not in out.output


def test_a_key_of_another_type_is_a_message_and_exit_code(redis_server, r):
    r.set("jobqueue:queues", "someone else's")  # no script met it yet to quarantine it
    out = run(redis_server, "info")
    assert out.exit_code == 1 and "holds another type of value" in out.output and "delete it" in out.output
    assert "Traceback" not in out.output


def test_unreachable_or_malformed_url_is_a_clear_error():
    for url, message in [("redis://127.0.0.1:1/0", "cannot reach Redis"), ("http://x", "unsupported Redis URL")]:
        proc = subprocess.run([sys.executable, "-m", "jobqueue", "info", "--url", url], cwd=ROOT,
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr


def test_help_for_every_command():
    for command in ([], ["worker"], ["info"], ["requeue"], ["empty"], ["enqueue"], ["embedded"]):
        out = CliRunner().invoke(main, [*command, "--help"])
        assert out.exit_code == 0 and "Usage:" in out.output


def test_worker_prefix_takes_only_its_own_apps_jobs(redis_server, r, workers):
    mine = Queue(connection=r, prefix="app2:").enqueue(jobs.add, 1, 2)
    theirs = Queue(connection=r).enqueue(jobs.add, 5, 5)
    proc = workers.start(redis_server.url, "--prefix", "app2:", "--burst")
    assert proc.wait(timeout=20) == 0
    assert mine.return_value() == 3 and theirs.get_status() == JobStatus.QUEUED


def test_worker_max_jobs_quits_after_taking_that_many(redis_server, r, workers):
    q = Queue(connection=r)
    for i in range(3):
        q.enqueue(jobs.add, i, i)
    proc = workers.start(redis_server.url, "--max-jobs", "2")  # not --burst: the limit alone ends it
    assert proc.wait(timeout=20) == 0
    assert len(q) == 1 and q.finished_job_registry.count == 2


def test_worker_path_allow_and_verbose(redis_server, r, workers, tmp_path):
    (tmp_path / "cli_path_tasks.py").write_text("def triple(x):\n    return 3 * x\n")
    q = Queue(connection=r)
    mine = q.enqueue("cli_path_tasks.triple", 3)
    proc = workers.start(redis_server.url, "--path", str(tmp_path), "--burst", "-v")
    assert proc.wait(timeout=20) == 0 and mine.return_value() == 9
    assert "Result is kept for 500 seconds" in workers.output(proc)  # -v: debug lines
    outside, inside = q.enqueue("os.getcwd"), q.enqueue(jobs.add, 1, 1)
    proc = workers.start(redis_server.url, "--allow", "tests.jobs", "--burst")
    assert proc.wait(timeout=20) == 0
    outside.refresh()
    assert "module os is not among the modules this worker runs (tests.jobs)" in outside.exc_info
    assert inside.return_value() == 2


def test_worker_allow_pickle(redis_server, r, workers):
    q = Queue("pickled", connection=r, serializer="pickle")
    job = q.enqueue(jobs.echo, {1, 2})
    workers.start(redis_server.url, "pickled", "--burst").wait(timeout=20)
    job.refresh()
    assert job.get_status() == JobStatus.FAILED and "--allow-pickle" in job.exc_info
    job.requeue()
    workers.start(redis_server.url, "pickled", "--burst", "--allow-pickle").wait(timeout=20)
    assert job.return_value() == {"args": [{1, 2}], "kwargs": {}}


def test_heartbeat_and_maintenance_flags_beat_the_environment(redis_server, r, workers, tmp_path):
    q = Queue(connection=r)
    job = q.enqueue(jobs.record, str(tmp_path / "log"), "hb", 30)
    workers.start(redis_server.url, "--heartbeat-interval", "0.2", "--heartbeat-ttl", "8",
                  "--maintenance-interval", "40", env={"JOBQUEUE_HEARTBEAT_INTERVAL": "100",
                                                       "JOBQUEUE_HEARTBEAT_TTL": "300",
                                                       "JOBQUEUE_MAINTENANCE_INTERVAL": "0.5"})
    wait_for(lambda: job.id in q.started_job_registry, message="job started")
    first = q.started_job_registry.get_scores()[job.id]
    wait_for(lambda: q.started_job_registry.get_scores()[job.id] > first, message="a heartbeat moved the deadline")
    assert 6 < q.started_job_registry.get_scores()[job.id] - time.time() <= 8
    assert 30_000 < r.pttl("jobqueue:maintenance") <= 40_000


def test_info_interval_refreshes_until_ctrl_c(redis_server, r, tmp_path):
    out_path = tmp_path / "info.txt"
    with open(out_path, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "jobqueue", "info", "--interval", "0.2", "--url",
                                 redis_server.url], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                # Ctrl+C reaches it even when the suite runs as a background job
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_for(lambda: "0 job(s) waiting" in out_path.read_text(), message="first view")
        Queue("watched", connection=r).enqueue(jobs.add, 1, 1)
        wait_for(lambda: "1 job(s) waiting" in out_path.read_text(), message="a later refresh shows the new job")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
    text = out_path.read_text()
    assert text.count("(every 0.2 s, Ctrl+C to stop)") >= 2 and "Traceback" not in text


def test_requeue_from_another_queue(redis_server, r, workers):
    other = Queue("other", connection=r)
    job = other.enqueue(jobs.fail)
    workers.start(redis_server.url, "other", "--burst").wait(timeout=20)
    assert run(redis_server, "requeue", "unknown").exit_code == 1  # the default queue has no such failure
    out = run(redis_server, "requeue", "--queue", "other", job.id)
    assert out.exit_code == 0 and "Requeued 1 job(s)" in out.output
    assert other.get_job_ids() == [job.id] and job.get_status() == JobStatus.QUEUED


def test_enqueue_options_reach_the_job(redis_server, r, workers, tmp_path):
    attempts = tmp_path / "attempts"
    out = run(redis_server, "enqueue", "tests.jobs.fail_until", str(attempts), ":99", "--timeout", "7",
              "--result-ttl", "9", "--retry", "2", "--job-id", "mine")
    assert out.exit_code == 0 and out.output.strip() == "mine"
    job = Job.fetch("mine", r)
    assert (job.timeout, job.result_ttl, job.retries_left) == (7, 9, 2)
    proc = workers.start(redis_server.url, "--burst")
    proc.wait(timeout=20)
    assert attempts.read_text() == "xxx", workers.output(proc)  # 1 run + 2 retries
    assert job.get_status() == JobStatus.FAILED
    again = run(redis_server, "enqueue", "tests.jobs.add", ":1", ":2", "--job-id", "mine")  # failed: replaced
    assert again.exit_code == 0 and Job.fetch("mine", r).args == [1, 2]
    live = run(redis_server, "enqueue", "tests.jobs.add", ":3", ":4", "--job-id", "mine")   # queued: refused
    assert live.exit_code == 1 and "mine already queued, scheduled or running" in live.output
    assert Job.fetch("mine", r).args == [1, 2] and r.llen("jobqueue:queue:default") == 1


def test_embedded_start_status_stop(tmp_path):
    env = {**os.environ, "JOBQUEUE_DATA_DIR": str(tmp_path / "data")}
    env.pop("JOBQUEUE_REDIS_URL", None)

    def jq(*args):
        return subprocess.run([sys.executable, "-m", "jobqueue", "embedded", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)

    try:
        started = jq("start")
        port, password, pid = (tmp_path / "data" / "server.info").read_text().split()
        assert started.returncode == 0 and f"pid {pid}, 127.0.0.1:{port}" in started.stdout
        assert jq("status").returncode == 0
        assert redis.Redis(port=int(port), password=password).ping()
        with pytest.raises(redis.exceptions.AuthenticationError):  # no password, no entry
            redis.Redis(port=int(port)).set("k", "v")
        assert jq("start").stdout == started.stdout  # reused, not a second server
    finally:
        stopped = jq("stop")
    assert stopped.stdout.strip() == "stopped"
    status = jq("status")
    assert status.returncode == 3 and "not running" in status.stdout
    assert jq("stop").stdout.strip() == "was not running"
