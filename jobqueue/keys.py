"""Every Redis key name jobqueue uses is built here, and only here.

Lua scripts receive the prefixes they need (``Keys.job_prefix``, ...) as
arguments and only append an id or a queue name to them, so the scheme below
is the single source of truth for the layout:

    {p}queues                     set of queue names seen
    {p}queue:{q}                  list of job ids waiting (head = next)
    {p}wake:{q}                   list of wake-up tokens for blocked workers
    {p}job:{id}                   hash: one job (laid out as compact.py says)
    {p}shared:{digest}            hash: options many jobs share, named by a digest of its content
    {p}registry:{kind}:{q}        sorted sets: started (member = '<id>:<attempt>',
                                  score = deadline), finished/failed/canceled
                                  (score = expiry), scheduled (score = run-at);
                                  scores are on Redis's clock
    {p}workers                    set of worker names
    {p}worker:{name}              hash: one worker's state, expires with its heartbeat
    {p}maintenance                lock: one maintenance pass at a time
    {p}clock                      hash: when anyone last beat, and since when beats are steady
    {p}quarantine                 list: notes on keys found unusable (wrong type), which were
                                  renamed to {p}quarantine:{original key}
    {p}quarantine-said            how many of those notes some worker has logged
"""

from __future__ import annotations

import os

DEFAULT_PREFIX = "jobqueue:"
REGISTRY_KINDS = ("started", "finished", "failed", "scheduled", "canceled")


class Keys:
    """Key builder for one prefix (``JOBQUEUE_PREFIX`` or ``jobqueue:``)."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix if prefix is not None else os.environ.get("JOBQUEUE_PREFIX", DEFAULT_PREFIX)
        p = self.prefix
        self.queues = p + "queues"
        self.workers = p + "workers"
        self.maintenance = p + "maintenance"
        self.clock = p + "clock"
        self.quarantine = p + "quarantine"
        self.quarantine_said = p + "quarantine-said"
        self.queue_prefix = p + "queue:"
        self.wake_prefix = p + "wake:"
        self.job_prefix = p + "job:"
        self.shared_prefix = p + "shared:"
        self.worker_prefix = p + "worker:"

    def queue(self, name: str) -> str:
        return self.queue_prefix + name

    def wake(self, name: str) -> str:
        return self.wake_prefix + name

    def job(self, job_id: str) -> str:
        return self.job_prefix + job_id

    def shared(self, digest: str) -> str:
        return self.shared_prefix + digest

    def worker(self, name: str) -> str:
        return self.worker_prefix + name

    def registry(self, kind: str, queue: str) -> str:
        if kind not in REGISTRY_KINDS:
            raise ValueError(f"unknown registry {kind!r}; expected one of {', '.join(REGISTRY_KINDS)}")
        return f"{self.prefix}registry:{kind}:{queue}"

    def registry_prefix(self, kind: str) -> str:
        """Prefix a Lua script appends a queue name to."""
        return f"{self.prefix}registry:{kind}:"

    def script_prefixes(self) -> list[str]:
        """The prefixes every state-changing script receives, in a fixed order
        (see ``scripts/lib.lua``)."""
        return [
            self.job_prefix,
            self.queue_prefix,
            self.wake_prefix,
            self.registry_prefix("started"),
            self.registry_prefix("finished"),
            self.registry_prefix("failed"),
            self.registry_prefix("scheduled"),
            self.registry_prefix("canceled"),
            self.queues,
            self.quarantine,
            self.shared_prefix,
        ]


def started_member(job_id: str, attempt: int | str) -> str:
    """A started-registry member names one attempt (scripts/lib.lua ``member``)."""
    return f"{job_id}:{attempt}"


def member_job_id(member: str) -> str:
    """The job id of a started-registry member."""
    head, sep, tail = member.rpartition(":")
    return head if sep and tail.isdigit() else member
