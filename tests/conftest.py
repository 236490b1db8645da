import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from jobqueue import Queue, Timing
from tests.redis_cluster import RedisClusterServers
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
# Short clocks so dead workers are noticed in a second or two, not a minute.
FAST = {"JOBQUEUE_HEARTBEAT_INTERVAL": "0.3", "JOBQUEUE_HEARTBEAT_TTL": "1.5",
        "JOBQUEUE_MAINTENANCE_INTERVAL": "0.5", "JOBQUEUE_SCHEDULER_INTERVAL": "0.2", "JOBQUEUE_IDLE_BLOCK": "1"}
FAST_TIMING = Timing(heartbeat_interval=0.3, heartbeat_ttl=1.5, maintenance_interval=0.5,
                     scheduler_interval=0.2, idle_block=1)
# Every server the tests talk to is on this machine: a proxy from the environment
# would only stand in the way (the proxy test sets its own).
for _name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
    os.environ.pop(_name, None)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster_servers(tmp_path_factory):
    """A 3-master Redis Cluster, one per test module that asks for it."""
    servers = RedisClusterServers(tmp_path_factory.mktemp("cluster")).start()
    yield servers
    servers.stop()


@pytest.fixture
def r(redis_server):
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def q(r):
    return Queue(connection=r)


@pytest.fixture
def own_redis(tmp_path):
    """A server of the test's own, for tests that kill or restart Redis: every
    write reaches the AOF before Redis answers, so a kill loses nothing acknowledged."""
    server = RedisServer(tmp_path / "redis", fsync="always").start()
    yield server
    server.kill()


def recording_client(url: str) -> tuple[redis.Redis, list[str]]:
    """A real client whose connections note the name of the thread behind
    every request they send. A pipeline goes out in one send, so the list
    holds one entry per round trip. A new connection's own set-up (HELLO,
    CLIENT ...) is not a request and is not noted."""
    senders: list[str] = []

    class Recording(redis.Connection):
        def send_packed_command(self, command, check_health=True):
            head = bytes(command if isinstance(command, (bytes, bytearray, memoryview)) else command[0])[:40]
            if head.split(b"\r\n")[2:3] not in ([b"HELLO"], [b"CLIENT"]):
                senders.append(threading.current_thread().name)
            return super().send_packed_command(command, check_health)

    kwargs = redis.Redis.from_url(url).connection_pool.connection_kwargs
    return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=Recording, **kwargs)), senders


def pid_alive(pid: int) -> bool:
    """A zombie counts as dead."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def worker_blocked(r: redis.Redis) -> bool:
    """Some client (a worker's waker) is blocked in BLPOP: the worker is idle."""
    return any(c.get("cmd") == "blpop" for c in r.client_list())


def burst_to_the_end(worker, timeout: float = 20) -> None:
    """Run a burst worker in a thread. One that has not ended within
    ``timeout`` got stuck (on poison data, say): it is stopped cold, and the
    test fails."""
    thread = threading.Thread(target=worker.work, kwargs={"burst": True}, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        worker.request_stop(cold=True)
        thread.join(10)
        raise AssertionError("the burst worker got stuck")


def wait_for(condition, timeout=15.0, interval=0.02, message="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class Workers:
    """Real worker processes (`python -m jobqueue worker`), killed at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen] = []

    def start(self, url: str, *args: str, env: dict | None = None) -> subprocess.Popen:
        log = open(self.tmp_path / f"worker-{len(self.procs)}.log", "w")
        full_env = {**os.environ, **FAST, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **(env or {})}
        proc = subprocess.Popen([sys.executable, "-m", "jobqueue", "worker", "--url", url, *args],
                                cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
        proc.log_path = log.name
        self.procs.append(proc)
        return proc

    @staticmethod
    def output(proc) -> str:
        return Path(proc.log_path).read_text()

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()


@pytest.fixture
def workers(tmp_path):
    w = Workers(tmp_path)
    yield w
    w.cleanup()


def pytest_collection_modifyitems(items):
    """Long scenarios first, so the other tests run beside them rather than after."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


def pytest_configure(config):
    config.addinivalue_line("markers", "long: a scenario of a minute or so; scheduled first")
