"""How a job is laid out in Redis: compactly, because a queue of millions of
waiting jobs costs what one job's hash costs, times millions.

Three rules (README, "Compact jobs"):

* **Shared options are stored once.** What the jobs of a batch
  (``enqueue_many``, ``prepare_*``) have in common (the function,
  serializer, timeouts, retries, callbacks) goes into a hash named by a
  digest of its content, ``{prefix}shared:<digest>``, which the job
  names in its ``shared`` field. The same options always give the same
  digest, so the hash never changes once written and a reader may cache it
  for ever. A field the job holds itself wins (``retries_left`` once the job
  used a retry). Shared hashes are never deleted: there is one per distinct
  set of options, so they are few.
* **Nothing redundant.** No ``id`` (the key holds it), no ``created_at`` (the
  enqueue time, ``enqueued_at``), no ``description`` unless one was given
  (it is made from the call when read).
* **Small values.** Redis keeps a small hash in its compact encoding (ziplist,
  listpack) only while every value is at most ``hash-max-ziplist-value``
  bytes (64 by default); one longer value makes the whole hash cost several
  times as much. The call's data is therefore stored in pieces of at most 64
  bytes, ``data``, ``data.1``, ``data.2``, ... (up to a few KiB: a bigger
  call makes a big hash whatever we do, so it stays whole).
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Mapping

SHARED = ("func", "serializer", "timeout", "result_ttl", "failure_ttl", "retries_left", "retry_intervals",
          "on_success", "on_failure")
DERIVED = ("id", "created_at")  # in memory; stored only to say what the key and enqueued_at do not
_NOT_OWN = frozenset(SHARED + DERIVED)
PIECE = 64  # Redis's default hash-max-ziplist-value (hash-max-listpack-value from Redis 7)
MAX_PIECES = 48  # with a job's other fields, under hash-max-ziplist-entries (128 by default)
_CACHE_LIMIT = 4096
_cache: dict[str, dict[str, str]] = {}


def digest(shared: Mapping[str, str]) -> str:
    """Content address of a set of shared options: equal options, equal digest."""
    return _digest(tuple(sorted(shared.items())))


@functools.lru_cache(maxsize=256)  # a batch of a million jobs has one set of options
def _digest(items: tuple[tuple[str, str], ...]) -> str:
    return hashlib.sha1(json.dumps(items, separators=(",", ":")).encode()).hexdigest()[:20]


def pack(fields: Mapping[str, str], share: bool = True) -> tuple[dict[str, str], dict[str, str], str]:
    """A job's fields as stored: (its own hash, the shared hash, its digest).
    ``share=False`` (a job enqueued alone) keeps its options in its own hash:
    writing a shared hash would cost the enqueue a command for one job's sake."""
    if not share:
        own = {k: v for k, v in fields.items() if k not in DERIVED and v != ""}
        return _with_pieces(own, fields), {}, ""
    own = {k: v for k, v in fields.items() if k not in _NOT_OWN}
    shared = {k: fields[k] for k in SHARED if fields.get(k)}
    own = _with_pieces(own, fields)
    name = digest(shared) if shared else ""
    if name:
        own["shared"] = name
    return own, shared, name


def _with_pieces(own: dict[str, str], fields: Mapping[str, str]) -> dict[str, str]:
    if fields.get("created_at") and fields.get("created_at") != fields.get("enqueued_at"):
        own["created_at"] = fields["created_at"]
    data = own.pop("data", None)
    if data is not None:
        own.update(pieces(data))
    return own


def unpack(stored: Mapping[str, str], shared: Mapping[str, str] | None = None) -> dict[str, str]:
    """A job's fields as read: its shared options under its own fields, data
    whole again. Safe to apply to fields already unpacked."""
    fields = {**(shared or {}), **stored}
    if "data.1" in fields:
        parts, i = [fields.pop("data", "")], 1
        while f"data.{i}" in fields:
            parts.append(fields.pop(f"data.{i}"))
            i += 1
        fields["data"] = "".join(parts)
    if "created_at" not in fields and "enqueued_at" in fields:
        fields["created_at"] = fields["enqueued_at"]
    return fields


def pieces(data: str) -> dict[str, str]:
    """``data`` cut so each piece is at most PIECE bytes of UTF-8."""
    size = PIECE if data.isascii() else PIECE // 4
    if len(data) <= size or len(data) > size * MAX_PIECES:
        return {"data": data}
    out = {"data": data[:size]}
    for i, start in enumerate(range(size, len(data), size), 1):
        out[f"data.{i}"] = data[start:start + size]
    return out


def cached(name: str) -> dict[str, str] | None:
    return _cache.get(name)


def remember(name: str, shared: dict[str, str]) -> None:
    """Only a complete hash is remembered (a missing one may yet be written)."""
    if shared and digest(shared) == name:
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        _cache[name] = shared
