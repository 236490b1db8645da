"""The worker's one round trip per turn of its loop: the outcomes that are
ready (with the writes their jobs asked for) go out, and up to N new jobs
come back, in one script call (finish+fetch: one EVALSHA, one TIME).

Every call in it is replay-safe, and the connection it uses never resends a
call by itself: when a reply is lost (a stalled or cut link), everything is
kept and sent again by the next turn, the fetch flagged as a resend so that
it hands back the attempts it took instead of taking new ones."""

from __future__ import annotations

import uuid
from typing import Any

import redis.retry
from redis.backoff import NoBackoff

from ..backend import Backend, text, text_dict
from ..connection import sibling
from ..job import Job
from .recording import batch_writes, finish_args, report_write_errors


SHARED_ENTRY = b"\0shared"  # fetch.lua's entry for shared options


class RoundTrip:
    def __init__(self, backend: Backend, worker: str, queues: list[str], deadline_ttl: float) -> None:
        self.jobs = backend  # what the fetched jobs talk to afterwards
        self.backend = Backend(sibling(backend.connection, retry=redis.retry.Retry(NoBackoff(), 0)),
                               backend.keys.prefix)
        self.worker, self.queues, self.deadline_ttl = worker, queues, deadline_ttl
        self.outcomes: list[dict] = []         # records for finish.lua
        self.writes: list[tuple] = []          # (job, queue, script, argv) of Job.write_on_success
        self.failures: list[tuple[Job, str]] = []  # on_failure to call once those outcomes are on record
        self._request: str | None = None       # kept until a fetch's reply arrives
        self.met_poison = False                # the last round trip quarantined a key

    def __call__(self, want: int, woken: bool, stats: list[Any]) -> tuple[list[tuple[str, Job]], list[dict],
                                                                         list[tuple[Job, str]]]:
        """Returns (fetched (queue, job) pairs, dropped outcome records, failures now on record)."""
        run = self.backend.run
        writes = batch_writes(self.writes, run.prefixes)
        calls = list(writes)  # before the finish (but replayed after it if Redis had forgotten the script)
        finish = [*finish_args(self.outcomes), *stats] if self.outcomes else None
        fetch = None
        if want > 0:
            resent = self._request is not None  # the last fetch's reply was lost: it may have run
            self._request = self._request or uuid.uuid4().hex[:16]
            fetch = [self.worker, self.deadline_ttl, want, "1" if woken else "0", self._request,
                     "1" if resent else "0", *self.queues]
        if finish and fetch:  # ARGV[A] says where finish's arguments end
            calls.append(("finish+fetch", [len(run.prefixes) + 1 + len(finish), *finish, *fetch]))
        elif finish or fetch:
            calls.append(("finish", finish) if finish else ("fetch", fetch))
        if not calls:
            return [], [], []
        results = (run.many(calls, raise_on_error=False, transaction=bool(writes)) if len(calls) > 1
                   else [run(calls[0][0], *calls[0][1])])
        report_write_errors(writes, results[:len(writes)])
        result = results[-1]
        if isinstance(result, Exception):  # jobqueue's own: an error here is not the application's
            raise result
        dropped_ids, flat = result if finish and fetch else (result, []) if finish else ([], result)
        dropped_ids = {text(i) for i in dropped_ids}
        notes = {i for i in dropped_ids if i.startswith("\0")}  # a job hash finish.lua quarantined
        dropped_ids -= notes
        dropped = [o for o in self.outcomes if o["id"] in dropped_ids]
        recorded = [(job, exc) for job, exc in self.failures if job.id not in dropped_ids]
        self.outcomes, self.writes, self.failures = [], [], []
        if fetch:
            self._request = None
        fetched, self.met_poison, shared = [], bool(notes), {}
        for i in range(0, len(flat), 4):
            if not flat[i]:  # a key the fetch moved out of the way (noted in the quarantine list)
                self.met_poison = True
                continue
            if flat[i] == SHARED_ENTRY:  # options the jobs after it share (compact.py)
                shared[text(flat[i + 1])] = text_dict(flat[i + 3])
                continue
            fields = text_dict(flat[i + 3])
            fields = {**shared.get(fields.get("shared", ""), {}), **fields}  # the job's own fields win
            fields["id"], fields["attempt"] = text(flat[i + 1]), str(flat[i + 2])
            fetched.append((text(flat[i]), Job.from_fields(self.jobs, fields)))
        return fetched, dropped, recorded

    def close(self) -> None:
        connection = self.backend.connection
        if connection is not self.jobs.connection:  # our own client: let its connections go
            pool = getattr(connection, "connection_pool", None)
            pool.disconnect() if pool is not None else connection.close()
