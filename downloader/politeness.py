"""Politeness toward hosts across the whole fleet; Redis keeps the books
(scripts/hosts.lua). At most ``per_host`` requests in flight to a host from
all workers on all machines (16 by default; set per host by `fetch
--per-host` or the config file's [hosts] table), optionally at most
``rate`` request starts a second, and a host that answered 429 or 503 with
Retry-After is left alone by every worker until then.

A worker leases permits (and tokens) in batches and holds them on a lease
it renews every few seconds, giving back what it no longer uses: a host
that is not throttled costs no Redis round trip per file. A download that
may not start now is postponed (jobqueue's Postpone): it waits in the
scheduled registry, holding no slot a download from another host could use.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urlsplit

import redis

from jobqueue import Postpone, Script
from jobqueue.backend import Backend, text
from jobqueue.connection import server_time

from .keys import Keys
from .shards import home, of_jobs

LEASE = float(os.environ.get("DOWNLOADER_HOST_LEASE", "10"))  # seconds a silent worker's permits outlive it
BATCH = 8  # permits (and tokens) asked for at once
DEFAULT_PER_HOST = 16
ENABLED = True  # a worker started with per_host = 0 keeps no books at all (no limit of its own making)
HOSTS = Script("downloader.hosts", resources.files(__package__).joinpath("scripts/hosts.lua").read_text())
log = logging.getLogger(__name__)
_gates: dict[tuple[int, str], "HostGate"] = {}
_gates_lock = threading.Lock()


def host_of(url: str) -> str:
    """The host a limit applies to: its name, with the port when one is given."""
    parts = urlsplit(url)
    name = (parts.hostname or "").lower()
    return f"{name}:{parts.port}" if parts.port else name


def register(connection: redis.Redis, hosts: dict[str, tuple[int, float]], keys: Keys | None = None) -> None:
    """Set the limits a fetch was given for the hosts of its links (the last
    fetch to name a host sets its limits for the whole fleet)."""
    keys = keys or Keys()
    pipe = connection.pipeline(transaction=False)
    for host, (limit, rate) in hosts.items():
        pipe.hset(keys.host(host), mapping={"limit": limit, "rate": rate})
    pipe.execute()


def throttled(connection: redis.Redis, keys: Keys | None = None) -> list[tuple[str, float]]:
    """(host, seconds left) of every host throttled now."""
    keys = keys or Keys()
    now = server_time(connection, keys.hosts_throttled)
    connection.zremrangebyscore(keys.hosts_throttled, "-inf", now)
    return [(text(h), until - now) for h, until in connection.zrangebyscore(keys.hosts_throttled, now, "+inf",
                                                                          withscores=True)]


def _say_moved(moved: list) -> None:
    for key in moved:
        log.error("Host key %s held another type of value (written by hand, or another application on the prefix): "
                  "moved to %s:quarantined; inspect or delete it", text(key), text(key))


@dataclass
class _Host:
    held: int = 0          # permits leased
    in_use: int = 0        # requests of ours in flight
    peak: int = 0          # most in use since the last renewal
    tokens: int = 0        # request starts granted by the rate bucket (when it has a rate)
    limited: bool = False  # the host has a rate
    calm_at: float = 0.0   # monotonic time before which the host is throttled


def _short(h: _Host) -> bool:
    """No permit (or no token) left for one more request."""
    return h.in_use >= h.held or (h.limited and h.tokens <= 0)


class HostGate:
    """One per worker process (and Redis client)."""

    def __init__(self, connection: redis.Redis, default_limit: int | None = None, keys: Keys | None = None) -> None:
        self.connection, self.keys = connection, keys or Keys()
        self.default_limit = default_limit or DEFAULT_PER_HOST  # for a host no fetch named
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.hosts: dict[str, _Host] = {}
        self.lock = threading.Lock()     # the books, held briefly
        self.asking = threading.Lock()   # one lease round trip at a time
        self._keeper: threading.Thread | None = None

    @classmethod
    def of(cls, jobs: Backend, default_limit: int | None = None) -> "HostGate":
        """The gate of a job's namespace: one per client and home namespace,
        whose keys hold the books for the whole fleet (shards.py)."""
        key = (id(jobs.connection), jobs.keys.prefix)
        with _gates_lock:
            gate = _gates.get(key)
            if gate is None or gate.connection is not jobs.connection:  # (worked out once per namespace)
                books = home([of_jobs(jobs)])
                gate = next((g for g in _gates.values()
                             if g.connection is jobs.connection and g.keys.prefix == books.prefix), None)
                gate = _gates[key] = gate or cls(jobs.connection, default_limit, books)
            return gate

    def enter(self, host: str) -> None:
        """Take a permit (and a token) for one request to ``host``, or raise Postpone."""
        with self.lock:
            h = self.hosts.setdefault(host, _Host())
        wait = self._lease(host, None, BATCH) if _short(h) else 0.0
        with self.lock:
            now = time.monotonic()
            if h.calm_at > now:
                raise Postpone(f"{host} asked to be left alone (Retry-After)", h.calm_at - now)
            if h.in_use >= h.held:
                raise Postpone(f"{host} has as many requests in flight as it allows (the fleet holds its permits)",
                               random.uniform(0.2, 0.6))
            if h.limited and h.tokens <= 0:
                raise Postpone(f"{host} is at its request rate", max(wait, 0.05) * random.uniform(1, 1.5))
            h.in_use += 1
            h.peak = max(h.peak, h.in_use)
            h.tokens -= 1 if h.limited else 0
        self._keep()

    def still_open(self, host: str) -> None:
        """Right before a request goes out: a host that asked for a pause since
        its permit was taken (the word reached this worker meanwhile) is left
        alone all the same (Postpone)."""
        with self.lock:
            h = self.hosts.get(host)
            now = time.monotonic()
            if h is not None and h.calm_at > now:
                raise Postpone(f"{host} asked to be left alone (Retry-After)", h.calm_at - now)

    def leave(self, host: str) -> None:
        with self.lock:
            h = self.hosts.get(host)
            if h is not None:
                h.in_use = max(0, h.in_use - 1)

    def throttle(self, host: str, seconds: float) -> None:
        """The host asked for a pause: every worker leaves it alone until then."""
        with self.lock:
            h = self.hosts.setdefault(host, _Host())
            h.calm_at = max(h.calm_at, time.monotonic() + seconds)
        try:
            _, moved = HOSTS(self.connection, "throttle", self.keys.host(host), host, f"{seconds:.3f}",
                             self.keys.hosts_throttled, keys=(self.keys.host(host),))  # (a key: routes it on a cluster)
            _say_moved(moved)
        except redis.exceptions.RedisError as exc:
            log.warning("Could not tell the fleet that %s asked for a pause (%s)", host, exc)

    def _lease(self, host: str, want: int | None, tokens: int) -> float:
        """One round trip: hold ``want`` permits in all (None: 8 more than in
        use, and only if still short when its turn comes: another thread may
        have leased meanwhile), take ``tokens``; learn the host's throttle.
        Returns seconds until the next token. Round trips go one at a time,
        and never under ``lock``: leave(), called on the transfer loop's
        thread, never waits for Redis."""
        with self.asking:
            if want is None:
                with self.lock:
                    h = self.hosts.setdefault(host, _Host())
                    if not _short(h):
                        return 0.0
                    want, tokens = h.in_use + BATCH, tokens if h.limited or not h.held else 0
            held, calm, granted, wait, rate, moved = HOSTS(self.connection, "lease", self.keys.host(host), self.worker,
                                                           want, LEASE, self.default_limit, tokens,
                                                           keys=(self.keys.host(host),))
            _say_moved(moved)
            with self.lock:
                h = self.hosts.setdefault(host, _Host())
                h.held, h.limited = int(held), float(rate) > 0
                h.tokens = int(granted) if h.limited else 0
                if float(calm) > 0:
                    h.calm_at = max(h.calm_at, time.monotonic() + float(calm))
        return float(wait)

    def _keep(self) -> None:
        if self._keeper is None or not self._keeper.is_alive():
            self._keeper = threading.Thread(target=self._renew, name="host leases", daemon=True)
            self._keeper.start()

    def _renew(self) -> None:
        """Every third of the lease: keep the permits recently used, give
        back the rest (locally first, so no request starts on a permit being
        given back), learn of throttles; forget hosts no longer used."""
        while True:
            time.sleep(LEASE / 3)
            with self.lock:
                keep = {host: max(h.peak, h.in_use) for host, h in self.hosts.items()}
                for host, h in self.hosts.items():
                    h.held, h.peak = min(h.held, keep[host]), h.in_use
            for host, want in keep.items():
                try:
                    self._lease(host, want, 0)
                except redis.exceptions.RedisError:
                    continue  # the lease outlives a short outage; a long one lapses, as for a dead worker
            with self.lock:
                for host, h in list(self.hosts.items()):
                    if not h.held and not h.in_use and h.calm_at <= time.monotonic():
                        del self.hosts[host]
