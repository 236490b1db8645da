"""Where the Redis connection comes from: an explicit client, a URL, the
``JOBQUEUE_REDIS_URL`` environment variable, or else the embedded server."""

from __future__ import annotations

import logging
import os
import time
from urllib.parse import urlsplit

import redis
from redis.cluster import RedisCluster

from . import embedded
from .exceptions import ConnectionConfigError

URL_ENV = "JOBQUEUE_REDIS_URL"
LONGEST_WAIT = 5.0  # seconds between a starting worker's tries to reach Redis, at most
SCHEMES = ("redis", "rediss", "unix")


def from_url(url: str, **options) -> redis.Redis:
    """A client for ``redis://``, ``rediss://`` (TLS) or ``unix://`` URLs,
    with password and db, that re-tries a dropped connection once."""
    scheme = urlsplit(url).scheme
    if scheme not in SCHEMES:
        raise ConnectionConfigError(
            f"unsupported Redis URL {url!r}: use redis://[:password@]host[:port][/db], rediss://... for TLS, "
            "or unix:///path/to/redis.sock"
        )
    options.setdefault("socket_connect_timeout", 5)
    options.setdefault("health_check_interval", 30)
    try:
        return redis.Redis.from_url(url, **options)
    except ValueError as exc:
        raise ConnectionConfigError(f"malformed Redis URL {url!r}: {exc}") from None


def cluster_if_enabled(client: redis.Redis, url: str | None) -> redis.Redis:
    """A client of a Redis Cluster node, swapped for a cluster client (one
    that routes each key to the master of its slot), so that any node's URL
    serves. Asks the node once (INFO cluster); call it once Redis answers."""
    if url is None or is_cluster(client) or urlsplit(url).scheme == "unix":
        return client
    try:
        enabled = client.info("cluster").get("cluster_enabled")
    except redis.exceptions.ResponseError:  # INFO renamed or refused: a plain server, as far as we can tell
        return client
    if not enabled:
        return client
    client.close()  # (a node refuses any database but 0 before we get here: the check says so)
    return RedisCluster.from_url(urlsplit(url)._replace(path="").geturl(), socket_connect_timeout=5)


def configured_url(url: str | None = None) -> str | None:
    return url or os.environ.get(URL_ENV) or None


def resolve(connection: redis.Redis | None = None, url: str | None = None) -> redis.Redis:
    """Never starts the embedded server when a URL is configured."""
    if connection is not None:
        return connection
    url = configured_url(url)
    if url:
        return from_url(url)
    server = embedded.ensure_running()
    if server.just_started:
        logging.getLogger("jobqueue").warning(embedded.announcement(server))
    return from_url(server.url)


def describe(connection: redis.Redis) -> str:
    """Where a client points, without its password: for messages."""
    if is_cluster(connection):
        node = connection.get_default_node()
        return f"redis cluster at {node.host}:{node.port}"
    kw = connection.connection_pool.connection_kwargs
    if "path" in kw:
        return f"unix://{kw['path']}"
    return f"redis://{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


def check(connection: redis.Redis, setting: str = f"--url / {URL_ENV}") -> None:
    """Fail early with a message that says what to do; ``setting`` names how
    the command that was run is told where Redis is."""
    try:
        connection.ping()
    except redis.exceptions.AuthenticationError as exc:
        raise ConnectionConfigError(f"Redis at {describe(connection)} refused the password: {exc}; "
                                    f"check the password in {setting}") from None
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        raise ConnectionConfigError(
            f"cannot reach Redis at {describe(connection)} ({exc}); start it, or set {setting}"
        ) from None
    except redis.exceptions.ResponseError as exc:  # e.g. a database number the server does not have
        raise ConnectionConfigError(f"Redis at {describe(connection)} refused the connection: {exc}; "
                                    f"check the URL in {setting} (databases are numbered from 0, "
                                    "16 of them by default)") from None


def server_time(connection: redis.Redis, key: str) -> float:
    """Redis's clock, on the node that holds ``key`` (a cluster's nodes each
    have their own)."""
    if is_cluster(connection):
        seconds, micros = connection.time(target_nodes=connection.get_node_from_key(key))
    else:
        seconds, micros = connection.time()
    return seconds + micros / 1e6


def wait_for_redis(connection: redis.Redis, startup_wait: float, *others: redis.Redis) -> None:
    """Redis may be briefly away when a worker starts (a restart, a
    failover): wait for it up to ``startup_wait`` seconds, then give up. A
    refused password is not waited for. With ``others`` (a worker of several
    namespaces on several servers), any one that answers is enough: the
    worker starts, and the rest join when they answer."""
    waited, pause = 0.0, 0.25
    while True:
        failure = None
        for client in (connection, *others):
            try:
                return check(client)
            except ConnectionConfigError as exc:
                if "refused the" in str(exc):  # a password, a database: not waited for
                    raise
                failure = exc
        if waited >= startup_wait:
            raise ConnectionConfigError(f"{failure} (tried for {waited:.0f} s)") from None
        if not waited:
            logging.getLogger("jobqueue.worker").warning("%s; trying again for up to %.0f s (JOBQUEUE_STARTUP_WAIT)",
                                                         failure, startup_wait)
        pause = min(pause * 2, LONGEST_WAIT, startup_wait - waited)
        time.sleep(pause)
        waited += pause


def ready(client: redis.Redis, url: str | None, setting: str = f"--url / {URL_ENV}", wait: float = 0.0) -> redis.Redis:
    """``client`` once Redis answers it (``wait``: seconds to wait, as a
    worker starting beside Redis does; else checked once, the error naming
    ``setting``), swapped for a cluster client when ``url`` names a node of a
    Redis Cluster."""
    if wait:
        wait_for_redis(client, wait)
    else:
        check(client, setting)
    return cluster_if_enabled(client, url)


def is_cluster(connection) -> bool:
    return isinstance(connection, RedisCluster)


def sibling(connection: redis.Redis, **overrides) -> redis.Redis:
    """A client of its own (its own pool) to the same server, with some
    connection settings changed: the worker's waker needs reads longer than
    the default timeout, its round trips a connection that never resends a
    call by itself. Returns ``connection`` itself if it has no pool to copy."""
    if is_cluster(connection):
        overrides.pop("retry", None)  # a cluster client sets its own (see redis-py's RedisCluster)
        node = connection.get_default_node()
        kwargs = {**connection.nodes_manager.connection_kwargs, **overrides}
        kwargs.pop("host", None), kwargs.pop("port", None)
        return RedisCluster(host=node.host, port=node.port, **kwargs)
    pool = getattr(connection, "connection_pool", None)
    if pool is None:
        return connection
    kwargs = {**pool.connection_kwargs, **overrides}
    return redis.Redis(connection_pool=type(pool)(connection_class=pool.connection_class, **kwargs))
