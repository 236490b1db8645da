"""jobqueue on a real 3-master Redis Cluster (the same redis-server binary),
through redis-py's cluster client: a namespace lives in one hash slot."""

import pytest

from jobqueue import JobStatus, Queue, Retry, Worker
from jobqueue.exceptions import ConnectionConfigError
from tests import jobs
from tests.conftest import FAST_TIMING

PREFIX = "{jq}:"


@pytest.fixture(scope="module")
def cluster(cluster_servers):
    client = cluster_servers.client()
    yield client
    client.close()


def test_enqueue_work_retry_and_requeue_on_a_cluster(cluster, tmp_path):
    q = Queue("c", connection=cluster, prefix=PREFIX)
    ok = [q.enqueue(jobs.add, i, i) for i in range(20)]
    retried = q.enqueue(jobs.fail_until, str(tmp_path / "n"), 2, retry=Retry(max=2))
    failing = q.enqueue(jobs.fail)
    scheduled = q.enqueue_many([Queue.prepare_data(jobs.add, (5, 5), job_id="batch-a"),
                                Queue.prepare_data(jobs.add, (6, 6), job_id="batch-b")])
    counted = [q.enqueue(jobs.count_then, PREFIX + "counts", "n") for _ in range(3)]  # writes ride in MULTI/EXEC
    Worker([q], connection=cluster, concurrency=4, timing=FAST_TIMING, prefix=PREFIX).work(burst=True)
    assert [job.return_value() for job in ok] == [2 * i for i in range(20)]
    assert all(job.get_status() == JobStatus.FINISHED for job in counted)
    assert cluster.hget(PREFIX + "counts", "n") == b"3"
    assert retried.return_value() == 2 and [j.return_value() for j in scheduled] == [10, 12]
    assert failing.get_status() == JobStatus.FAILED and q.failed_job_registry.get_job_ids() == [failing.id]
    q.failed_job_registry.requeue(failing.id)
    assert q.get_job_ids() == [failing.id]
    Worker([q], connection=cluster, timing=FAST_TIMING, prefix=PREFIX).work(burst=True)
    assert failing.get_status() == JobStatus.FAILED and q.started_job_registry.count == 0
    slots = {cluster.keyslot(key) for key in cluster.keys(target_nodes=cluster.ALL_NODES) if key.startswith(b"{jq}")}
    assert len(slots) == 1   # the whole namespace in one slot


def test_a_prefix_without_a_hash_tag_is_refused_on_a_cluster(cluster):
    with pytest.raises(ConnectionConfigError, match="hash tag"):
        Queue("c", connection=cluster, prefix="jobqueue:")


def test_an_idle_worker_on_a_cluster_is_woken_by_a_token(cluster):
    import threading
    from jobqueue import Timing
    from tests.conftest import wait_for
    q = Queue("idle", connection=cluster, prefix=PREFIX)
    slow = Timing(heartbeat_interval=0.3, heartbeat_ttl=1.5, maintenance_interval=60, scheduler_interval=60,
                  idle_block=60)  # only the wake-up token can bring the job in time
    worker = Worker([q], connection=cluster, timing=slow, prefix=PREFIX, name="cluster-idle")
    thread = threading.Thread(target=worker.work, daemon=True)
    thread.start()
    try:
        wait_for(lambda: worker._waker is not None and worker._waker.armed.is_set(), message="worker idle")
        job = q.enqueue(jobs.add, 4, 4)
        wait_for(lambda: job.get_status() == JobStatus.FINISHED, timeout=10, message="woken by the token")
    finally:
        worker.request_stop()
        thread.join(10)
    assert not thread.is_alive()


def shard_prefixes(cluster, masters=3) -> list[str]:
    """Hash-tagged prefixes whose slots lie on different masters, one each."""
    by_node: dict[str, str] = {}
    for i in range(200):
        prefix = f"{{shard{i}}}:"
        by_node.setdefault(cluster.get_node_from_key(prefix + "x").name, prefix)
        if len(by_node) == masters:
            return sorted(by_node.values())
    raise AssertionError("could not find a prefix per master")


def test_one_worker_takes_from_queues_on_every_master_taking_turns(cluster, tmp_path):
    """A worker serves queues of three namespaces, one per master: no script
    call crosses a slot, and the namespaces take turns (with one slot, jobs
    run 0, 1, 2, 0, 1, 2...), so a fleet spreads its load over the masters."""
    prefixes = shard_prefixes(cluster)
    queues = [Queue("downloads", connection=cluster, prefix=p) for p in prefixes]
    log = tmp_path / "order.log"
    for i in range(3):
        for shard, q in enumerate(queues):
            q.enqueue(jobs.record, str(log), f"{shard}-{i}")
    worker = Worker(queues, connection=cluster, timing=FAST_TIMING, name="sharded")
    assert worker.work(burst=True)
    started = [line.split()[1] for line in log.read_text().splitlines() if line.startswith("start")]
    assert started == [f"{shard}-{i}" for i in range(3) for shard in range(3)]
    for q in queues:
        assert q.count == 0 and q.finished_job_registry.count == 3 and q.started_job_registry.count == 0
        slots = {cluster.keyslot(k) for k in cluster.keys(q.backend.keys.prefix + "*", target_nodes=cluster.ALL_NODES)}
        assert slots == {cluster.keyslot(q.backend.keys.prefix)}   # each namespace in its own slot
    assert len({cluster.get_node_from_key(p).name for p in prefixes}) == 3


def test_a_sharded_worker_is_registered_and_woken_in_every_namespace(cluster):
    """An idle worker blocks on each namespace's node (one waker each) and is
    listed by `info` in each; a job enqueued on any shard wakes it."""
    import threading
    from jobqueue import Timing
    from tests.conftest import wait_for
    prefixes = shard_prefixes(cluster)
    queues = [Queue("idle", connection=cluster, prefix=p) for p in prefixes]
    slow = Timing(heartbeat_interval=0.3, heartbeat_ttl=1.5, maintenance_interval=60, scheduler_interval=60,
                  idle_block=60)  # only a wake-up token can bring a job in time
    worker = Worker(queues, connection=cluster, timing=slow, name="sharded-idle")
    thread = threading.Thread(target=worker.work, daemon=True)
    thread.start()
    try:
        wait_for(lambda: all(lane.waker is not None and lane.waker.armed.is_set() for lane in worker.lanes),
                 message="idle on every shard")
        for p in prefixes:
            assert [w.name for w in Worker.all(cluster, prefix=p)] == ["sharded-idle"]
        for q in reversed(queues):
            job = q.enqueue(jobs.add, 2, 3)
            wait_for(lambda: job.get_status() == JobStatus.FINISHED, timeout=10, message=f"woken on {q.backend.keys.prefix}")
    finally:
        worker.request_stop()
        thread.join(10)
    assert not thread.is_alive()
    assert all(Worker.all(cluster, prefix=p) == [] for p in prefixes)   # death registered in each


def test_the_cli_takes_any_nodes_url_and_serves_several_namespaces(cluster_servers, cluster, workers):
    """`jobqueue worker --prefix A --prefix B` on the URL of one node of a
    cluster: a cluster client, one lane per namespace; `info` shows each."""
    import json
    import subprocess
    import sys
    from tests.conftest import ROOT, wait_for
    prefixes = shard_prefixes(cluster, masters=2)
    queues = [Queue("cli", connection=cluster, prefix=p) for p in prefixes]
    enqueued = [q.enqueue(jobs.add, i, 1) for i, q in enumerate(queues) for _ in range(3)]
    other_node = f"redis://127.0.0.1:{cluster_servers.ports[-1]}/0"
    worker = workers.start(other_node, "cli", *[a for p in prefixes for a in ("--prefix", p)], "--burst")
    assert worker.wait(timeout=30) == 0, workers.output(worker)
    assert all(job.get_status() == JobStatus.FINISHED for job in enqueued)
    assert f"Listening on {prefixes[0]}cli, {prefixes[1]}cli" in workers.output(worker)
    info = subprocess.run([sys.executable, "-m", "jobqueue", "info", "--url", other_node, "--json",
                           *[a for p in prefixes for a in ("--prefix", p)]],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert info.returncode == 0, info.stderr
    shown = json.loads(info.stdout)["namespaces"]
    assert [(n["prefix"], n["queues"][0]["finished"]) for n in shown] == [(p, 3) for p in prefixes]
    wrong_db = subprocess.run([sys.executable, "-m", "jobqueue", "info", "--url", other_node[:-1] + "3"],
                              cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert wrong_db.returncode == 1 and "SELECT is not allowed in cluster mode" in wrong_db.stderr, wrong_db.stderr
