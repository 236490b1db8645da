"""Redis failing the worker in every way but dying: out of memory, a replica
answering READONLY until a failover, a password set under it, and a long
outage. The worker must stay up (or stop cleanly when asked), lose nothing,
say once what happened, and not hammer Redis while it waits."""

import os
import signal
import time

import redis

from jobqueue import Job, JobStatus, Queue
from tests import jobs
from tests.conftest import wait_for
from tests.forwarder import Forwarder
from tests.invariants import assert_one_outcome_each, attempts
from tests.redis_server import RedisServer


def enqueue_tracked(q, log, n, seconds=0.05):
    return [q.enqueue(jobs.tracked, str(log), f"j{i}", seconds).id for i in range(n)]


def test_out_of_memory_is_waited_out(redis_server, r, workers, tmp_path):
    q, log = Queue(connection=r), tmp_path / "attempts.log"
    ids = enqueue_tracked(q, log, 40)
    worker = workers.start(redis_server.url, "-c", "2")
    wait_for(lambda: r.zcard(q.backend.keys.registry("finished", q.name)) >= 5, message="work under way")
    r.config_set("maxmemory-policy", "noeviction")
    r.config_set("maxmemory", "1")        # every write now fails: OOM command not allowed
    wait_for(lambda: "OOM" in workers.output(worker), message="OOM met")
    time.sleep(1.0)
    r.config_set("maxmemory", "0")
    wait_for(lambda: r.zcard(q.backend.keys.registry("finished", q.name)) == len(ids), timeout=30,
             message="all jobs finished after the OOM")
    assert worker.poll() is None, workers.output(worker)
    assert_one_outcome_each(q, ids)
    assert workers.output(worker).count("OutOfMemoryError") == 1   # said once


def test_a_replica_answering_readonly_then_masterdown_until_the_failover(tmp_path, workers):
    master = RedisServer(tmp_path / "master").start()
    replica = RedisServer(tmp_path / "replica").start()
    try:
        m, rep = master.client(), replica.client()
        rep.replicaof("127.0.0.1", master.port)
        q, log = Queue(connection=m), tmp_path / "attempts.log"
        ids = enqueue_tracked(q, log, 20)
        wait_for(lambda: rep.llen(q.key) == 20, message="replicated")
        worker = workers.start(replica.url, "-c", "2")          # a worker pointed at what is now a replica
        wait_for(lambda: "READONLY" in workers.output(worker) or "ReadOnly" in workers.output(worker),
                 message="READONLY met")
        rep.config_set("replica-serve-stale-data", "no")
        master.stop()                                            # the master is gone: reads answer MASTERDOWN
        wait_for(lambda: "Link with MASTER is down" in workers.output(worker), message="MASTERDOWN met")
        rep.replicaof("no", "one")                               # the failover: the replica is the master now
        rq = Queue(connection=rep)
        wait_for(lambda: rep.zcard(rq.backend.keys.registry("finished", rq.name)) == len(ids), timeout=30,
                 message="all jobs finished after the failover")
        assert worker.poll() is None
        assert_one_outcome_each(rq, ids)
    finally:
        master.stop()
        replica.stop()


def test_a_restart_still_loading_its_data_is_waited_out(own_redis, workers, tmp_path):
    """LOADING: Redis restarted with a big dataset answers every command with
    an error until its data is back in memory."""
    r = own_redis.client()
    filler = r.pipeline(transaction=False)
    for i in range(20_000):     # 20 MB that does not compress: loading hands out LOADING replies every 2 MB
        filler.set(f"filler:{i}", os.urandom(1000))
    filler.execute()
    r.bgrewriteaof()
    wait_for(lambda: not r.info("persistence")["aof_rewrite_in_progress"], message="AOF rewritten")
    q, log = Queue(connection=r), tmp_path / "attempts.log"
    ids = enqueue_tracked(q, log, 30, seconds=0.02)
    worker = workers.start(own_redis.url, "-c", "2")
    wait_for(lambda: r.zcard(q.backend.keys.registry("finished", q.name)) >= 3, message="work under way")
    own_redis.kill()
    own_redis.extra = ["--key-load-delay", "50"]    # a slow disk: about a second of loading
    own_redis.start(wait=False)
    wait_for(lambda: "loading the dataset" in workers.output(worker), timeout=30, message="LOADING met")
    wait_for(lambda: _answers(r) and r.zcard(q.backend.keys.registry("finished", q.name)) == len(ids), timeout=60,
             message="all jobs finished once Redis had loaded")
    assert worker.poll() is None, workers.output(worker)
    assert_one_outcome_each(q, ids)
    assert workers.output(worker).count("Redis failed us (BusyLoadingError") == 1     # said once


def _answers(r) -> bool:
    try:
        return bool(r.ping())
    except redis.exceptions.RedisError:
        return False


def test_a_password_set_under_the_worker(own_redis, workers, tmp_path):
    r = own_redis.client()
    q, log = Queue(connection=r), tmp_path / "attempts.log"
    first = enqueue_tracked(q, log, 5)
    worker = workers.start(own_redis.url)
    wait_for(lambda: r.zcard(q.backend.keys.registry("finished", q.name)) == 5, message="first jobs done")
    r.config_set("requirepass", "s3cret")
    r.client_kill_filter(_type="normal", skipme=True)            # every connection must log in again
    wait_for(lambda: "Authentication" in workers.output(worker) or "NOAUTH" in workers.output(worker),
             message="NOAUTH met")
    r.config_set("requirepass", "")
    later = [q.enqueue(jobs.tracked, str(log), "later", 0).id]
    wait_for(lambda: Job.fetch(later[0], r).get_status(refresh=False) == JobStatus.FINISHED, timeout=30,
             message="the worker carries on once the password is gone")
    assert worker.poll() is None
    assert_one_outcome_each(q, first + later)


def test_a_long_outage_costs_little_and_a_warm_shutdown_meanwhile_ends_it(redis_server, r, workers, tmp_path):
    link = Forwarder(redis_server.port)
    try:
        worker = workers.start(link.url())
        wait_for(lambda: "Listening" in workers.output(worker), message="worker up")
        time.sleep(0.5)
        link.cut()
        before, cpu_before = link.attempts, _cpu_seconds(worker.pid)
        time.sleep(5)                   # longer than the heartbeat TTL (1.5 s)
        tries, cpu = link.attempts - before, _cpu_seconds(worker.pid) - cpu_before
        print(f"outage: {tries} connection attempts, {cpu:.2f} s CPU in 5 s")
        # with the test's clocks (a beat every 0.3 s) a waiting worker tries about 6 times a second
        # (heartbeat, waker, loop); one that spins tries thousands of times
        assert tries <= 60, f"{tries} connection attempts in 5 s"
        assert cpu < 1.0, f"{cpu:.2f} s of CPU in 5 s of waiting"
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=15) == 0                          # idle: nothing to finish, so it ends
        out = workers.output(worker)
        assert out.count("Redis failed us") <= 2 and "Traceback" not in out
    finally:
        link.close()


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_script_keeping_redis_busy_is_waited_out(redis_server, r, workers, tmp_path):
    """BUSY: someone's long Lua script holds Redis past lua-time-limit."""
    import threading
    q, log = Queue(connection=r), tmp_path / "attempts.log"
    ids = enqueue_tracked(q, log, 30, seconds=0.02)
    worker = workers.start(redis_server.url, "-c", "2")
    wait_for(lambda: r.zcard(q.backend.keys.registry("finished", q.name)) >= 3, message="work under way")
    r.config_set("lua-time-limit", 100)
    busy = threading.Thread(target=lambda: redis_server.client().eval(
        "local t = redis.call('TIME'); local s = tonumber(t[1]) + tonumber(t[2]) / 1e6 "
        "repeat local n = redis.call('TIME') until tonumber(n[1]) + tonumber(n[2]) / 1e6 > s + 1.5 return 1", 0))
    busy.start()
    wait_for(lambda: "BUSY" in workers.output(worker), message="BUSY met")
    busy.join()
    r.config_set("lua-time-limit", 5000)
    wait_for(lambda: r.zcard(q.backend.keys.registry("finished", q.name)) == len(ids), timeout=30,
             message="all jobs finished after the busy script")
    assert worker.poll() is None
    assert_one_outcome_each(q, ids)


def test_a_warm_shutdown_during_an_outage_while_busy_ends_once_its_job_is_done(redis_server, r, workers, tmp_path):
    q, log = Queue(connection=r), tmp_path / "attempts.log"
    job = q.enqueue(jobs.tracked, str(log), "j", 2.0)
    link = Forwarder(redis_server.port)
    try:
        worker = workers.start(link.url())
        wait_for(lambda: attempts(log), message="job running")
        link.cut()                                  # longer than the heartbeat TTL, from here to the end
        worker.send_signal(signal.SIGTERM)          # warm: the job finishes first
        assert worker.wait(timeout=30) == 0         # then it tries to record, gives up, and ends
        out = workers.output(worker)
        assert [a.how for a in attempts(log)] == ["ok"] and "Traceback" not in out
        assert "Could not record 1 outcome(s)" in out
        link.heal()
        other = workers.start(redis_server.url)     # the outcome never reached Redis: the job runs again, once
        wait_for(lambda: job.get_status() == JobStatus.FINISHED, timeout=20, message="job finished elsewhere")
        assert_one_outcome_each(q, [job.id])
        assert other.poll() is None
    finally:
        link.close()
