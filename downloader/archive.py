"""A download archive, like gallery-dl's ``--download-archive``: a Redis set
per archive name holding the source id (``imgur:ID``) of every item a run
downloaded (or found already there). Later fetches leave archived items out
before anything is enqueued, so re-reading "this user's posts" every day
costs only the new ones. Shared by every run, worker and machine on the
Redis; exported to and imported from a text file (one id a line).

The worker adds an item when its download is recorded (mark.lua, in the
same round trip), so an item is archived only once its file is complete.
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
    def __init__(self, connection: redis.Redis, name: str, keys: Keys | None = None) -> None:
        self.connection, self.name = connection, name
        self.key = (keys or Keys()).archive(name)

    def missing(self, items: list[Item]) -> list[Item]:
        """Those of ``items`` the archive does not hold (SMISMEMBER per chunk)."""
        kept = []
        for start in range(0, len(items), CHUNK):
            chunk = items[start:start + CHUNK]
            ids = [member(item) for item in chunk]
            if not any(ids):  # links of a file: nothing an archive records, no round trip
                kept += chunk
                continue
            known = self.connection.smismember(self.key, [i or "-" for i in ids])
            kept += [item for item, i, have in zip(chunk, ids, known) if not (i and have)]
        return kept

    def __len__(self) -> int:
        return self.connection.scard(self.key)

    def export(self) -> Iterator[str]:
        for value in self.connection.sscan_iter(self.key, count=CHUNK):
            yield text(value)

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
