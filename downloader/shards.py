"""Where a run's keys and jobs live: its shard.

On one Redis with ``shards = 1`` (the default) there is one shard, laid out
as always: the downloader's keys under ``DOWNLOADER_PREFIX`` (``downloader:``),
the jobs under jobqueue's prefix (``JOBQUEUE_PREFIX``, ``jobqueue:``).

On a Redis Cluster, or with ``shards = N > 1``, shard k is the namespace
``{downloader.k}:`` (from ``DOWNLOADER_PREFIX``): the run's keys there, its
jobs under ``{downloader.k}:jobqueue:``. One hash tag per shard puts all of
a run in one slot, so every script stays in one slot: the marks that ride in
jobqueue's finish call, the run's state and lease, a batch of jobs and
their URLs. A run lives wholly on one shard, picked from its id; the shards'
hash tags fall on different masters, so many runs spread over them (one
run's load is one master's). Shard 0 is also the home of what the whole
fleet shares: per-host politeness and the `archive import` target.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

import redis

from jobqueue import Queue
from jobqueue.backend import Backend
from jobqueue.connection import is_cluster

from .keys import Keys

JOBS = "jobqueue:"  # a tagged shard's jobs: under its own prefix, plus this
_TAGGED = re.compile(r"^\{(?P<base>.*)\.(?P<index>\d+)\}:" + JOBS + "$")


@dataclass(frozen=True)
class Shard:
    keys: Keys       # the downloader's keys of the shard's runs
    jobs: Backend    # the jobqueue namespace of their jobs

    def queue(self, name: str) -> Queue:
        return Queue(name, self.jobs)


def layout(connection: redis.Redis, count: int = 1, prefix: str | None = None) -> list[Shard]:
    """The shards of a deployment: one plain one, or ``count`` tagged ones."""
    keys = Keys(prefix)
    if count <= 1 and not is_cluster(connection):
        return [Shard(keys, Backend(connection))]
    base = keys.prefix.strip(":{}") or "downloader"
    return [_tagged(connection, f"{{{base}.{k}}}:") for k in range(max(count, 1))]


def of_jobs(jobs: Backend) -> Shard:
    """The shard a job's namespace belongs to (a worker knows no settings of
    the run's: its job's prefix says where the run is)."""
    if _TAGGED.match(jobs.keys.prefix):
        return Shard(Keys(jobs.keys.prefix[:-len(JOBS)]), jobs)
    return Shard(Keys(), jobs)


def home_of(shard: Shard) -> Keys:
    """Shard 0's keys, where the fleet's per-host books are kept."""
    found = _TAGGED.match(shard.jobs.keys.prefix)
    return Keys(f"{{{found['base']}.0}}:") if found else shard.keys


def pick(shards: list[Shard], run_id: str) -> Shard:
    """A run's shard, from its id (the same on every machine with the same
    ``shards`` setting)."""
    return shards[0] if len(shards) == 1 else shards[zlib.crc32(run_id.encode()) % len(shards)]


def _tagged(connection: redis.Redis, prefix: str) -> Shard:
    return Shard(Keys(prefix), Backend(connection, prefix + JOBS))
