"""Two attempts of one download at once: a worker paused past its deadline
(SIGSTOP), or cut off from Redis, goes on while the attempt that replaced it
is writing. Each writes its own part file; the final file is byte-identical
to the source."""

import hashlib
import signal
import subprocess
import sys
import time

import pytest

from downloader.config import Settings
from downloader.naming import file_name
from downloader.runs import Runs
from jobqueue import Job
from tests.conftest import ROOT, wait_for
from tests.forwarder import Forwarder
from tests.http_server import MisbehavingServer
from tests.test_downloader_e2e import env_for

pytestmark = pytest.mark.long


def _size(path):
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


@pytest.mark.parametrize("how", ["paused", "cut off from Redis"])
def test_a_paused_attempt_and_its_successor_never_share_a_file(redis_server, r, tmp_path, how):
    web = MisbehavingServer(slow_delay=0.004, slow_size=1100)   # a 3-4 MB image, sent in 4 KiB steps
    folder = tmp_path / "dl"
    url = f"{web.url}/slow/big.png"
    settings = Settings(queue="overlap", dir=str(folder), retries=2, job_timeout=120)
    run_id, _ = Runs(r).create([url], "test", settings)
    job_id = f"dl-{run_id}-{hashlib.sha1(url.encode()).hexdigest()[:16]}"
    logs = [open(tmp_path / f"w{i}.log", "w") for i in range(2)]

    link = Forwarder(redis_server.port)                       # worker 0's own way to Redis

    def worker(i):
        env = env_for(redis_server, DOWNLOADER_REDIS_URL=link.url()) if i == 0 else env_for(redis_server)
        return subprocess.Popen([sys.executable, "-m", "downloader", "work", "-c", "1", "--queue", "overlap",
                                 "--dir", str(folder), "--name", f"overlap-{i}"], cwd=ROOT, env=env,
                                stdout=logs[i], stderr=subprocess.STDOUT)

    first = worker(0)
    second = None
    try:
        name = file_name(url)
        part = lambda n: next(folder.glob(f"{name}.*.{n}.part"), folder / "none")
        wait_for(lambda: _size(part(1)) > 300_000, message="attempt 1 under way")
        if how == "paused":
            first.send_signal(signal.SIGSTOP)                  # paused past its deadline: its job is reaped
        else:
            link.cut()                                         # its downloads go on; its heartbeats do not
        second = worker(1)
        wait_for(lambda: Job.fetch(job_id, r).attempt >= 2 and _size(part(2)) > 0, timeout=30,
                 message="attempt 2 writing its own file")
        if how == "paused":
            first.send_signal(signal.SIGCONT)                  # attempt 1 is back, mid-body, while 2 writes
        else:
            link.heal()
        wait_for(lambda: Runs(r).progress(run_id).complete, timeout=60, message="the run completes")
        assert (folder / name).read_bytes() == web.slow_body   # byte-identical, whoever renamed it
        assert [p for p, _ in web.ranges] == ["/slow/big.png"]   # attempt 2 took attempt 1's bytes over (a copy)
        progress = Runs(r).progress(run_id)
        assert (progress.done, progress.failed) == (1, 0)
        wait_for(lambda: sorted(p.name for p in folder.iterdir()) == [name], timeout=15,
                 message="every part file removed: the superseded attempt deleted its own")
        if how == "paused":
            assert web.aborted == ["/slow/big.png"]            # attempt 1 hung up mid-body once it was told
    finally:
        for proc in (first, second):
            if proc is not None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait()
        web.stop()
        link.close()


def test_a_driven_worker_runs_its_downloads_at_once_and_a_stalled_redis_fails_none(redis_server, r, tmp_path):
    """`downloader work` starts the downloads it takes together, in one turn
    of its libcurl loop: each gets a connection at once (none waits for
    another to say whether it multiplexes, as libcurl's PIPEWAIT made them do,
    until the first was done). And it turns that loop on the thread that talks
    to Redis: a call stalled for longer than the read timeout holds the loop
    up while the bytes wait in the kernel. That is not a stall: every download
    completes, byte-identical, none failed or fetched again."""
    web = MisbehavingServer(slow_delay=0.02, slow_size=600)   # 860 KB each, in 4 KiB steps: about 4 s
    folder = tmp_path / "dl"
    urls = [f"{web.url}/slow/s{i}.png" for i in range(6)]
    run_id, _ = Runs(r).create(urls, "test", Settings(queue="stalled-loop", dir=str(folder), read_timeout=1.0,
                                                      retries=0))
    link = Forwarder(redis_server.port)
    env = env_for(redis_server, DOWNLOADER_REDIS_URL=link.url(), JOBQUEUE_SCHEDULER_INTERVAL="0.2")
    with open(tmp_path / "worker.log", "w") as log:
        worker = subprocess.Popen([sys.executable, "-m", "downloader", "work", "-c", "8", "--queue", "stalled-loop",
                                   "--dir", str(folder)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: web.bodies_in_flight == 6, message="every download under way at once")
        link.stall()   # its next call (the scheduler's, every 0.2 s) waits, and the loop with it
        time.sleep(3)  # three read timeouts
        assert web.bodies_in_flight == 6  # still being sent: more than the kernel's buffers hold
        link.heal()
        wait_for(lambda: Runs(r).progress(run_id).complete, timeout=60, message="the run completes")
        progress = Runs(r).progress(run_id)
        assert (progress.done, progress.failed) == (6, 0), Runs(r).failures(run_id)
        assert all((folder / file_name(u)).read_bytes() == web.slow_body for u in urls)
        assert sum(web.hits.values()) == 6 and not web.aborted   # each fetched once, none cut short
    finally:
        worker.kill()
        worker.wait()
        web.stop()
        link.close()
