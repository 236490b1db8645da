"""A download archive, like gallery-dl's ``--download-archive``: a Redis set
per archive name holding the source id (``imgur:ID``) of every item a run
downloaded (or found already there). Later fetches leave archived items out
before anything is enqueued, so re-reading "this user's posts" every day
costs only the new ones. Shared by every run, worker and machine on the
Redis; exported to and imported from a text file (one id a line).

The worker adds an item when its download is recorded (mark.lua, in the
same round trip), so an item is archived only once its file is complete.
With several shards (shards.py) each shard keeps the items of its runs
(the mark cannot leave the run's slot) and the archive is their union with
the home namespace's: a fetch leaves out what any of them holds; an import
goes home.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import redis

from jobqueue.backend import text

from .keys import Keys
from .sources import Item

CHUNK = 1000  # ids per command


def member(item: Item) -> str:
    """The archive's key for an item; "" for one without a source id (a bare link)."""
    return f"imgur:{item.id}" if item.id and item.kind != "links" else ""


class Archive:
    def __init__(self, connection: redis.Redis, name: str, keys: Keys | list[Keys] | None = None) -> None:
        """``keys``: home's, then every shard's (see the module's note)."""
        self.connection, self.name = connection, name
        self.keys = [k.archive(name) for k in (keys if isinstance(keys, list) else [keys or Keys()])]
        self.key = self.keys[0]

    def missing(self, items: list[Item]) -> list[Item]:
        """Those of ``items`` the archive does not hold (SMISMEMBER per chunk)."""
        kept = []
        for start in range(0, len(items), CHUNK):
            chunk = items[start:start + CHUNK]
            ids = [member(item) for item in chunk]
            if not any(ids):  # links of a file: nothing an archive records, no round trip
                kept += chunk
                continue
            pipe = self.connection.pipeline(transaction=False)  # every shard's archive in one round trip
            for key in self.keys:
                pipe.smismember(key, [i or "-" for i in ids])
            held = [any(flags) for flags in zip(*pipe.execute())]
            kept += [item for item, i, have in zip(chunk, ids, held) if not (i and have)]
        return kept

    def __len__(self) -> int:
        if len(self.keys) == 1:
            return self.connection.scard(self.key)
        return sum(1 for _ in self.export())

    def export(self) -> Iterator[str]:
        """Each id once (with several shards, those seen are remembered)."""
        seen: set[str] | None = set() if len(self.keys) > 1 else None
        for key in self.keys:
            for value in self.connection.sscan_iter(key, count=CHUNK):
                value = text(value)
                if seen is not None:
                    if value in seen:
                        continue
                    seen.add(value)
                yield value

    def forget(self) -> None:
        for key in self.keys:  # one command per key: the shards' keys lie in different slots
            self.connection.delete(key)

    def add(self, ids: Iterable[str]) -> int:
        """Returns how many were new."""
        added, batch = 0, []
        for value in ids:
            batch.append(value)
            if len(batch) == CHUNK:
                added += self.connection.sadd(self.key, *batch)
                batch = []
        if batch:
            added += self.connection.sadd(self.key, *batch)
        return added
