"""A real 3-master Redis Cluster for tests, from the same redis-server binary:
three nodes on free loopback ports, the 16,384 slots split between them."""

from __future__ import annotations

import random
import socket
import subprocess
import time
from pathlib import Path

import redis
from redis.cluster import RedisCluster

from jobqueue.embedded import find_redis_server

SLOTS = 16384


class RedisClusterServers:
    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.directory, self.ports = directory, [_cluster_port() for _ in range(masters)]
        self.procs: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def client(self) -> RedisCluster:
        return RedisCluster(host="127.0.0.1", port=self.ports[0])

    def start(self) -> "RedisClusterServers":
        for port in self.ports:
            folder = self.directory / str(port)
            folder.mkdir(parents=True, exist_ok=True)
            self.procs.append(subprocess.Popen(
                [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                 "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--save", "",
                 "--appendonly", "no", "--logfile", "redis.log"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        nodes = [redis.Redis(port=p) for p in self.ports]
        deadline = time.monotonic() + 10
        while True:
            try:
                for node in nodes:
                    node.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cluster nodes did not start; see {self.directory}")
                time.sleep(0.05)
        share = SLOTS // len(nodes)
        for i, node in enumerate(nodes):
            last = SLOTS if i == len(nodes) - 1 else (i + 1) * share
            node.execute_command("CLUSTER ADDSLOTS", *range(i * share, last))
        for node in nodes[1:]:
            node.execute_command("CLUSTER MEET", "127.0.0.1", self.ports[0])
        while any(node.execute_command("CLUSTER INFO").get("cluster_state") != "ok" for node in nodes):
            if time.monotonic() > deadline + 20:
                raise RuntimeError("the cluster never came up")
            time.sleep(0.1)
        for node in nodes:
            node.close()
        return self

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10,000) is free and valid too."""
    while True:
        port = random.randint(20000, 55000)
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
            return port
        except OSError:
            continue
