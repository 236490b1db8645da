"""jobqueue on a real 3-master Redis Cluster (the same redis-server binary),
through redis-py's cluster client: a namespace lives in one hash slot."""

import pytest

from jobqueue import JobStatus, Queue, Retry, Worker
from jobqueue.exceptions import ConnectionConfigError
from tests import jobs
from tests.conftest import FAST_TIMING
from tests.redis_cluster import RedisClusterServers

PREFIX = "{jq}:"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    servers = RedisClusterServers(tmp_path_factory.mktemp("cluster")).start()
    client = servers.client()
    yield client
    client.close()
    servers.stop()


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
