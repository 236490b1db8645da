"""The waker: blocks on the queues' wake-up lists (BLPOP, no polling) while
the worker has free slots and nothing to do, and turns a token into an event
on the worker's queue, saying which lane (``owner``) it came from."""

from __future__ import annotations

import logging
import threading
import time
from queue import SimpleQueue

import redis

from ..backend import Backend, text
from ..connection import is_cluster, sibling

log = logging.getLogger("jobqueue.worker")
READ_MARGIN = 5.0  # seconds a blocked read may outlast the block before it counts as a stall


class Waker(threading.Thread):
    def __init__(self, backend: Backend, queues: list[str], events: SimpleQueue, block: float,
                 owner: object = None) -> None:
        super().__init__(name="waker", daemon=True)
        self.events, self.block, self.owner = events, block, owner
        self.keys = [backend.keys.wake(q) for q in queues]
        client = _blocking_client(backend.connection, block)
        if is_cluster(client):  # every key of the namespace is in one slot: block on the node that holds it
            client = client.get_node_from_key(self.keys[0]).redis_connection
        self.pool = client.connection_pool
        self.armed = threading.Event()
        self.closed = False
        self.failing = False
        self._lock = threading.Lock()  # close() never slips in between the check and the request going out

    def run(self) -> None:
        connection = None
        while True:
            self.armed.wait()
            try:
                with self._lock:
                    if self.closed:
                        break
                    connection = connection or self.pool.get_connection()
                    connection.send_command("BLPOP", *self.keys, self.block)
                got = connection.read_response()
                self.failing = False
            except Exception as exc:  # any error: logged once, and the thread lives on
                if self.closed:
                    break
                if not self.failing:
                    expected = isinstance(exc, redis.exceptions.RedisError)
                    log.log(logging.WARNING if expected else logging.ERROR, "Waker: %s: %s; retrying",
                            type(exc).__name__, exc, exc_info=not expected)
                self.failing = True
                if connection is not None:
                    connection.disconnect()
                time.sleep(min(self.block, 1.0))
                got = None
            self.armed.clear()
            self.events.put(("wake", (self.owner, text(got[0]) if got else None)))

    def close(self) -> None:
        """The worker stops: end the thread and let go of its connection at
        once (closing it ends a BLPOP under way)."""
        with self._lock:
            self.closed = True
        self.armed.set()
        self.pool.disconnect()


def _blocking_client(connection: redis.Redis, block: float) -> redis.Redis:
    """Reads that outlast the block: redis-py gives every connection a 5 s read
    timeout unless told otherwise, which would cut a longer BLPOP short and
    turn waiting into polling."""
    return sibling(connection, socket_timeout=block + READ_MARGIN)


def pass_token(connection: redis.Redis, key: str) -> None:
    """A worker took a wake-up token it cannot use (no free slot): leave it
    for another worker, keeping at most one token waiting."""
    try:
        pipe = connection.pipeline(transaction=True)
        pipe.rpush(key, "1")
        pipe.ltrim(key, 0, 0)
        pipe.execute()
    except redis.exceptions.RedisError:
        pass  # the next wake-up or fetch takes care of it
