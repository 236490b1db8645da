"""Every Redis key the downloader uses (jobqueue keeps its own in jobqueue.keys).

    {p}runs                   sorted set of run ids, scored by creation time
    {p}run:{id}               hash: run metadata, lifecycle state and the byte counter
    {p}run:{id}:urls          hash: url -> job id, every URL enqueued (HLEN = the run's total)
    {p}run:{id}:{state}       sets of URLs: done, skipped, failed (O(1) counts)
    {p}run:{id}:reasons       hash: url -> why it failed
    {p}run:{id}:producer      string with a TTL: the lease of the producer enqueueing the run
    {p}archive:{name}         set of source ids (imgur:ID) downloaded by any run (archive.py)
    {p}host:{host}            hash: limit, rate, throttled until, rate bucket (politeness.py)
    {p}host:{host}:held       hash: worker -> permits it holds;  ...:leases  zset: worker -> lease expiry
    {p}hosts:throttled        sorted set: host -> throttled until (for `status`)

The run's own keys expire together once it is complete (scripts/run.lua);
the ``runs`` index forgets an expired run when it is next read.
"""

from __future__ import annotations

import os

STATES = ("done", "skipped", "failed")


class Keys:
    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix if prefix is not None else os.environ.get("DOWNLOADER_PREFIX", "downloader:")
        self.runs = self.prefix + "runs"

    def run(self, run_id: str) -> str:
        return f"{self.prefix}run:{run_id}"

    def urls(self, run_id: str) -> str:
        return f"{self.run(run_id)}:urls"

    def state(self, run_id: str, state: str) -> str:
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}")
        return f"{self.run(run_id)}:{state}"

    def reasons(self, run_id: str) -> str:
        return f"{self.run(run_id)}:reasons"

    @property
    def hosts_throttled(self) -> str:
        return f"{self.prefix}hosts:throttled"

    def host(self, host: str) -> str:
        return f"{self.prefix}host:{host}"

    def archive(self, name: str) -> str:
        return f"{self.prefix}archive:{name}"

    def producer(self, run_id: str) -> str:
        return f"{self.run(run_id)}:producer"

    def all_of(self, run_id: str) -> list[str]:
        """Every key of the run (as scripts/run.lua's PARTS, plus the lease)."""
        return [self.run(run_id), self.urls(run_id), *(self.state(run_id, s) for s in STATES), self.reasons(run_id),
                self.producer(run_id)]
