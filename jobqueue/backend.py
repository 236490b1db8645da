"""A connection, a key prefix and the scripts bound to them: what every
Queue, Job, registry and Worker talks to Redis through."""

from __future__ import annotations

import threading

import redis

from . import connection as connection_mod
from .exceptions import ConnectionConfigError
from .keys import Keys
from .scripts import ScriptRunner

_default_lock = threading.Lock()
_default_clients: dict[str, redis.Redis] = {}


def default_connection(url: str | None = None) -> redis.Redis:
    """One shared client per configured URL (or the embedded server)."""
    url = connection_mod.configured_url(url) or ""
    with _default_lock:
        client = _default_clients.get(url)
        if client is None:
            client = connection_mod.resolve(url=url or None)
            _default_clients[url] = client
        return client


class Backend:
    def __init__(self, connection: redis.Redis | None = None, prefix: str | None = None) -> None:
        self.connection = connection if connection is not None else default_connection()
        self.keys = Keys(prefix)
        if connection_mod.is_cluster(self.connection) and not _hash_tagged(self.keys.prefix):
            raise ConnectionConfigError(
                f"on Redis Cluster a jobqueue namespace must live in one hash slot: use a key prefix with a hash "
                f"tag, e.g. JOBQUEUE_PREFIX='{{jobqueue}}:' (the prefix is {self.keys.prefix!r})")
        self.run = ScriptRunner(self.connection, self.keys)

    def time(self) -> float:
        """Redis's clock (the one every script reads), on the node that holds
        the namespace: a cluster's nodes each have their own."""
        return connection_mod.server_time(self.connection, self.keys.workers)

    @classmethod
    def of(cls, connection: "redis.Redis | Backend | None", prefix: str | None = None) -> "Backend":
        if isinstance(connection, Backend):
            return connection
        return cls(connection, prefix)


def text(value: bytes | str | None) -> str | None:
    """Redis replies are bytes unless the client decodes them."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def storable(value: str) -> str:
    """``value`` as text Redis can store and Lua's cjson can read: a lone
    surrogate (an undecodable byte of a file name, through os.fsdecode) is
    not UTF-8 and would refuse the whole call, so it becomes its escape
    (``\\udcff``); all other text is kept as it is."""
    return value if value.isascii() else value.encode("utf-8", "backslashreplace").decode("utf-8")


def wrong_type(exc: BaseException) -> bool:
    """Redis refused a command because its key holds another type of value
    (someone wrote it by hand, or another application shares the prefix)."""
    return isinstance(exc, redis.exceptions.ResponseError) and "WRONGTYPE" in str(exc)


def explained(exc: Exception) -> str | None:
    """One line for a command-line user when an error is the data's, not a
    bug's: text that is not UTF-8 (an argument with undecodable bytes, as
    Python reads them), or a key someone replaced by another type (met outside
    the scripts that quarantine such keys). None for any other error."""
    if isinstance(exc, UnicodeEncodeError):
        return (f"{storable(str(exc.object))!r} is not UTF-8 (its undecodable bytes are shown escaped); names "
                "and data in Redis are UTF-8 text: pass UTF-8")
    if wrong_type(exc):
        return (f"a Redis key this command uses holds another type of value than it should ({exc}); someone wrote "
                "it by hand or another application shares the prefix: inspect that key and delete it, or use "
                "another prefix")
    return None


def text_dict(raw) -> dict[str, str]:
    """HGETALL as a dict, or a Lua flat list, decoded."""
    if isinstance(raw, dict):
        return {text(k): text(v) for k, v in raw.items()}
    it = iter(raw)
    return {text(k): text(v) for k, v in zip(it, it)}


def _hash_tagged(prefix: str) -> bool:
    start = prefix.find("{")
    return start >= 0 and prefix.find("}", start + 2) > start
