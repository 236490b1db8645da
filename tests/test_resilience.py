"""No job is ever lost: real worker processes killed at any moment, real
Redis killed and restarted. Each test is independent and runs in parallel."""

import random
import signal
import time

from jobqueue import Job, JobStatus, Queue, Worker
from tests import jobs
from tests.conftest import pid_alive, wait_for


def lines(path):
    return path.read_text().splitlines() if path.exists() else []


def started(path, tag):
    return any(line.startswith(f"start {tag} ") for line in lines(path))


def test_worker_killed_mid_job_is_rerun_once_by_another(redis_server, r, workers, tmp_path):
    q = Queue(connection=r)
    log = tmp_path / "runs"
    job = q.enqueue(jobs.record, str(log), "a", 1.0)
    first = workers.start(redis_server.url)
    wait_for(lambda: started(log, "a"), message="job started")
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert job.get_status() == JobStatus.STARTED  # still held by the dead worker
    second = workers.start(redis_server.url)
    wait_for(lambda: job.get_status() == JobStatus.FINISHED, timeout=20, message="job finished elsewhere")
    runs = lines(log)
    assert [x.split()[0] for x in runs] == ["start", "start", "done"]
    assert len(q.started_job_registry) == 0 and len(q) == 0
    assert Job.fetch(job.id, r).worker_name.endswith(f":{second.pid}")  # recorded by the second worker
    assert int(r.hget(job.key, "abandoned")) == 1


def test_killed_fork_worker_takes_its_work_horse_with_it(redis_server, r, workers, tmp_path):
    q = Queue(connection=r)
    log = tmp_path / "runs"
    q.enqueue(jobs.record, str(log), "h", 5)
    worker = workers.start(redis_server.url, "--fork")
    wait_for(lambda: started(log, "h"), message="work horse started")
    horse = int(lines(log)[0].split()[2])
    assert horse != worker.pid
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    wait_for(lambda: not pid_alive(horse), timeout=5, message="work horse gone")
    assert not any(x.startswith("done") for x in lines(log))  # the horse died before its job's end


def test_sigterm_is_a_warm_shutdown(redis_server, r, workers, tmp_path):
    q = Queue(connection=r)
    log = tmp_path / "runs"
    running = q.enqueue(jobs.record, str(log), "w", 1.0)
    waiting = q.enqueue(jobs.add, 1, 1)
    worker = workers.start(redis_server.url)
    wait_for(lambda: started(log, "w"), message="job started")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == 0
    assert running.get_status() == JobStatus.FINISHED
    assert waiting.get_status() == JobStatus.QUEUED and q.get_job_ids() == [waiting.id]
    assert r.scard("jobqueue:workers") == 0
    assert "Warm shut down" in workers.output(worker)


def test_second_signal_is_a_cold_shutdown_that_returns_jobs(redis_server, r, workers, tmp_path):
    q = Queue(connection=r)
    log = tmp_path / "runs"
    job = q.enqueue(jobs.record, str(log), "c", 30)
    later = q.enqueue(jobs.add, 1, 1)
    worker = workers.start(redis_server.url, "--fork")
    wait_for(lambda: started(log, "c"), message="job started")
    horse = int(lines(log)[0].split()[2])
    worker.send_signal(signal.SIGINT)
    wait_for(lambda: "Warm shut down requested" in workers.output(worker), message="first signal handled")
    worker.send_signal(signal.SIGINT)
    assert worker.wait(timeout=10) == 0
    assert job.get_status() == JobStatus.QUEUED
    assert q.get_job_ids() == [job.id, later.id]  # back at the front
    assert len(q.started_job_registry) == 0
    wait_for(lambda: not pid_alive(horse), timeout=5, message="work horse stopped")


def test_random_sigkills_across_several_queues_lose_nothing(redis_server, r, workers, tmp_path):
    """Kill workers at arbitrary instants: dequeuing, mid-job, recording. Each
    dies holding jobs of the queue it lists first, and each queue is first for
    some of them: the last one dies holding jobs of the queue the final worker
    lists second."""
    log = tmp_path / "runs"
    high, low = Queue("high", connection=r), Queue("low", connection=r)
    tags = [f"t{i}" for i in range(160)]
    for i, tag in enumerate(tags):
        (high if i % 2 else low).enqueue(jobs.record, str(log), tag, 0.1)
    env = {"JOBQUEUE_MAX_ABANDONED": "1000"}
    rng = random.Random(7)
    for i in range(6):
        first, order = (low, ("low", "high")) if i % 2 else (high, ("high", "low"))
        before = set(first.started_job_registry.get_job_ids())
        worker = workers.start(redis_server.url, *order, "-c", "4", "-q", env=env)
        wait_for(lambda: set(first.started_job_registry.get_job_ids()) - before, timeout=30, message="a job taken")
        time.sleep(rng.uniform(0.0, 0.3))
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    final = workers.start(redis_server.url, "high", "low", "-c", "4", "-q", env=env)

    def all_done():
        return len(high) + len(low) == 0 and high.started_job_registry.count + low.started_job_registry.count == 0
    wait_for(all_done, timeout=60, interval=0.2, message="every job finished")
    final.send_signal(signal.SIGTERM)
    final.wait(timeout=10)
    done = {x.split()[1] for x in lines(log) if x.startswith("done")}
    assert done == set(tags)
    assert high.finished_job_registry.count + low.finished_job_registry.count == len(tags)
    assert high.failed_job_registry.count + low.failed_job_registry.count == 0


def test_job_abandoned_too_often_goes_to_failed_with_the_reason(redis_server, r, workers, tmp_path):
    q = Queue(connection=r)
    log = tmp_path / "runs"
    job = q.enqueue(jobs.record, str(log), "x", 30, on_failure=jobs.remember_failure)
    env = {"JOBQUEUE_MAX_ABANDONED": "1"}
    for attempt in (1, 2):
        worker = workers.start(redis_server.url, env=env)
        wait_for(lambda: len([x for x in lines(log) if x.startswith("start")]) == attempt, message=f"start {attempt}")
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    workers.start(redis_server.url, env=env)
    wait_for(lambda: job.get_status() == JobStatus.FAILED, timeout=20, message="abandoned job failed")
    job.refresh()
    assert "abandoned 2 times" in job.exc_info and job.id in q.failed_job_registry
    wait_for(lambda: r.get(f"callback:{job.id}"), message="on_failure called")
    assert b"AbandonedJobError" in r.get(f"callback:{job.id}")


def test_redis_restart_mid_run_loses_nothing(own_redis, workers, tmp_path):
    r = own_redis.client()
    q = Queue(connection=r)
    log = tmp_path / "runs"
    tags = [f"j{i}" for i in range(60)]
    for tag in tags:
        q.enqueue(jobs.record, str(log), tag, 0.05)  # own_redis: appendfsync always, so every enqueue survives a kill
    procs = [workers.start(own_redis.url, "-c", "2") for _ in range(2)]
    # both booted: a worker that finds no Redis at start exits with a clear error, by design
    wait_for(lambda: Worker.count(connection=r) == 2, message="both workers registered")
    wait_for(lambda: len(lines(log)) > 20, message="work under way")
    own_redis.kill()
    time.sleep(1.0)
    own_redis.start()
    r = own_redis.client()
    q = Queue(connection=r)
    wait_for(lambda: len(q) == 0 and q.started_job_registry.count == 0, timeout=60, interval=0.2,
             message="queue drained after restart")
    dead = [workers.output(p)[-3000:] for p in procs if p.poll() is not None]
    assert not dead, f"workers must survive a Redis restart; the dead one said: {dead}"
    done = {x.split()[1] for x in lines(log) if x.startswith("done")}
    assert done == set(tags)
    assert q.finished_job_registry.count == len(tags)
    assert any("Redis is back after" in workers.output(p) for p in procs)


def test_dead_redis_at_start_is_a_clear_error_after_the_stated_wait(workers, tmp_path):
    proc = workers.start("redis://127.0.0.1:1/0", "--burst", env={"JOBQUEUE_STARTUP_WAIT": "1"})
    assert proc.wait(timeout=20) == 1
    out = workers.output(proc)
    assert "trying again for up to 1 s (JOBQUEUE_STARTUP_WAIT)" in out
    assert "cannot reach Redis" in out and "(tried for 1 s)" in out and "Traceback" not in out


def test_a_worker_started_while_redis_is_away_waits_for_it(own_redis, workers, tmp_path):
    job = Queue(connection=own_redis.client()).enqueue(jobs.add, 2, 2)
    own_redis.kill()  # every write is in the AOF: the job comes back with the server
    proc = workers.start(own_redis.url, "--burst")
    wait_for(lambda: "trying again for up to 30 s" in workers.output(proc), message="worker waiting")
    own_redis.start()  # the same port, data and fixture (which kills it at the end)
    assert proc.wait(timeout=30) == 0 and job.return_value() == 4
