"""Connections from URLs and the embedded default."""

import os
import subprocess
import sys

import pytest
import redis

from jobqueue import Queue, Worker, embedded
from jobqueue.connection import from_url, resolve
from jobqueue.exceptions import ConnectionConfigError
from tests import jobs
from tests.conftest import FAST_TIMING, ROOT
from tests.redis_server import RedisServer


def test_password_and_db_in_the_url(tmp_path):
    server = RedisServer(tmp_path / "pw", password="s3cret").start()
    try:
        client = from_url(server.url.replace("/0", "/3"))
        q = Queue(connection=client)
        job = q.enqueue(jobs.add, 1, 2)
        Worker([q], connection=client, timing=FAST_TIMING).work(burst=True)
        assert job.return_value() == 3
        assert client.connection_pool.connection_kwargs["db"] == 3
        with pytest.raises(redis.exceptions.AuthenticationError):
            from_url(f"redis://:wrong@127.0.0.1:{server.port}").ping()
    finally:
        server.stop()


def test_unix_socket_url(tmp_path):
    sock = tmp_path / "redis.sock"
    proc = subprocess.Popen([embedded.find_redis_server(), "--port", "0", "--unixsocket", str(sock),
                             "--dir", str(tmp_path), "--save", ""], stdout=subprocess.DEVNULL)
    try:
        client = from_url(f"unix://{sock}")
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                import time; time.sleep(0.02)
        q = Queue(connection=client)
        job = q.enqueue(jobs.add, 2, 2)
        Worker([q], connection=client, timing=FAST_TIMING).work(burst=True)
        assert job.return_value() == 4
    finally:
        proc.kill()
        proc.wait()


def test_bad_scheme_is_refused():
    with pytest.raises(ConnectionConfigError, match="unsupported Redis URL"):
        from_url("mysql://x")


def test_embedded_server_starts_once_is_reused_and_stops(tmp_path, monkeypatch):
    monkeypatch.setenv("JOBQUEUE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("JOBQUEUE_REDIS_URL", raising=False)
    first = embedded.ensure_running()
    try:
        again = embedded.ensure_running()
        assert (again.pid, again.port) == (first.pid, first.port)
        client = resolve()
        assert client.connection_pool.connection_kwargs["host"] == "127.0.0.1"
        client.set("k", "v")
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert client.config_get("appendfsync")["appendfsync"] == "everysec"
        # the CLI sees the same server
        env = {**os.environ, "JOBQUEUE_DATA_DIR": str(tmp_path / "data")}
        env.pop("JOBQUEUE_REDIS_URL", None)
        out = subprocess.run([sys.executable, "-m", "jobqueue", "embedded", "status"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and f"127.0.0.1:{first.port}" in out.stdout
        assert (tmp_path / "data" / "server.info").stat().st_mode & 0o077 == 0  # password file is private
    finally:
        assert embedded.stop()
    assert embedded.status() is None
    restarted = embedded.ensure_running()  # AOF brings the data back
    try:
        assert from_url(restarted.url).get("k") == b"v"
    finally:
        embedded.stop()


def test_configured_url_never_starts_the_embedded_server(tmp_path, monkeypatch, redis_server):
    monkeypatch.setenv("JOBQUEUE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("JOBQUEUE_REDIS_URL", redis_server.url)
    client = resolve()
    assert client.connection_pool.connection_kwargs["port"] == redis_server.port
    assert not (tmp_path / "data").exists()
