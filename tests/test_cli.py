"""The jobqueue command as a user types it."""

import json
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from jobqueue import JobStatus, Queue
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
])
def test_bad_input_is_a_message_and_exit_code(redis_server, r, args, message):
    out = run(redis_server, *args)
    assert out.exit_code != 0 and message in out.output
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
