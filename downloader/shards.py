"""Where a run's keys and jobs live: its shard.

On one Redis with ``shards = 1`` (the default) there is one shard, laid out
as always: the downloader's keys under ``DOWNLOADER_PREFIX`` (``downloader:``),
the jobs under jobqueue's prefix (``JOBQUEUE_PREFIX``, ``jobqueue:``).

On a Redis Cluster, or with ``shards = N > 1``, each shard is a namespace of
its own hash tag: the run's keys under ``{downloader.k.x}:``, its jobs under
``{downloader.k.x}:jobqueue:``. One tag for all of a run keeps every script
in one slot: the marks that ride in jobqueue's finish call, the run's state
and lease, a batch of jobs with its URLs. Shard k's tag is the first whose
slot lies in the k-th of N equal slices of the 16,384 slots, so with the
usual even split of slots among masters and N a multiple of the masters,
every master holds as many shards as the others. A run lives wholly on one
shard, picked from its id. What the whole fleet shares (per-host
politeness, `archive import`) lives in the home namespace ``{downloader}:``.
"""

from __future__ import annotations

import functools
import itertools
import re
import zlib
from dataclasses import dataclass

import redis
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from jobqueue import Queue
from jobqueue.backend import Backend
from jobqueue.connection import is_cluster
from jobqueue.worker.monitor import list_workers

from .exceptions import ConfigError
from .keys import Keys

JOBS = "jobqueue:"  # a tagged shard's jobs: under its own prefix, plus this
_TAGGED = re.compile(r"^\{(?P<base>.*)\.\d+\.\d+\}:" + JOBS + "$")


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
    base = _base(keys.prefix)
    return [_tagged(connection, tag(base, k, max(count, 1)) + ":") for k in range(max(count, 1))]


def deployed(connection: redis.Redis, count: int, prefix: str | None = None) -> list[Shard]:
    """``layout``, once ``count`` is known to be the deployment's: the first
    machine records it in Redis (``{downloader}:shards``), and a machine
    whose setting differs is refused while runs of the recorded layout are
    kept or its workers are alive (it would see only part of the runs, and
    its workers serve only part of the jobs). With neither left, its setting
    is recorded."""
    key = f"{{{_base(Keys(prefix).prefix)}}}:shards"
    pipe = connection.pipeline(transaction=False)
    pipe.set(key, count, nx=True)
    pipe.get(key)
    recorded = pipe.execute()[1]
    if not (recorded and recorded.isdigit()):  # written over by someone: this machine's setting stands
        connection.set(key, count)
        recorded = count
    recorded = int(recorded)
    if recorded != count:
        old = layout(connection, recorded, prefix)
        runs = any(connection.exists(shard.keys.runs) for shard in old)
        workers = {w.name for shard in old for w in list_workers(shard.jobs, with_jobs=False)}
        if runs or workers:
            held = " and ".join(what for what, found in (("runs", runs), (f"{len(workers)} live worker(s)", workers))
                                if found)
            raise ConfigError(f"this Redis has {held} of a layout with shards = {recorded}, and this machine has shards = "
                              f"{count}: give every machine shards = {recorded} (DOWNLOADER_SHARDS or the config "
                              f"file), or stop those workers and delete those runs first (downloader runs; "
                              f"downloader delete RUN)")
        connection.set(key, count)
    return layout(connection, count, prefix)


def home(shards: list[Shard]) -> Keys:
    """Where the fleet's shared keys live: the plain layout's own keys, or
    the home namespace of the tagged one."""
    found = _TAGGED.match(shards[0].jobs.keys.prefix)
    return Keys(f"{{{found['base']}}}:") if found else shards[0].keys


def of_jobs(jobs: Backend) -> Shard:
    """The shard a job's namespace belongs to (a worker knows no settings of
    the run's: its job's prefix says where the run is)."""
    if _TAGGED.match(jobs.keys.prefix):
        return Shard(Keys(jobs.keys.prefix[:-len(JOBS)]), jobs)
    return Shard(Keys(), jobs)


def pick(shards: list[Shard], run_id: str) -> Shard:
    """A run's shard, from its id (the same on every machine with the same
    ``shards`` setting)."""
    return shards[0] if len(shards) == 1 else shards[zlib.crc32(run_id.encode()) % len(shards)]


@functools.lru_cache(maxsize=4096)
def tag(base: str, k: int, count: int) -> str:
    """Shard k's hash tag, ``{base.k.x}``: the first x whose slot lies in the
    k-th of ``count`` equal slices of the slot space."""
    low = k * REDIS_CLUSTER_HASH_SLOTS // count
    high = (k + 1) * REDIS_CLUSTER_HASH_SLOTS // count
    for x in itertools.count():
        candidate = f"{{{base}.{k}.{x}}}"
        if low <= key_slot(candidate.encode()) < high:
            return candidate
    raise AssertionError("unreachable")  # (every slice is hit: crc16 covers every slot)


def _base(prefix: str) -> str:
    return prefix.strip(":{}") or "downloader"


def _tagged(connection: redis.Redis, prefix: str) -> Shard:
    return Shard(Keys(prefix), Backend(connection, prefix + JOBS))
