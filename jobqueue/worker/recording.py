"""Turning what happened to a job into the record ``finish.lua`` writes:
finished, failed, retried (now or later through the scheduled registry), or
put back on its queue by a cold shutdown; and batching the writes jobs asked
to have made with their success."""

from __future__ import annotations

import json
import logging
from typing import Any

from ..backend import storable
from ..job import DEFAULT_FAILURE_TTL, DEFAULT_RESULT_TTL, Job
from ..retry import retry_delay
from ..scripts import Script, fenced
from .execution import Outcome

log = logging.getLogger("jobqueue.worker")


def settle_record(job: Job, queue: str, outcome: Outcome) -> dict[str, Any]:
    """What finish.lua writes for one attempt; times (ended_at, expiries,
    retry run-at) are added there, on Redis's clock. Its texts are made
    storable: a traceback that names an undecodable file name must not stop
    every outcome of the round trip from being recorded."""
    base = {"id": job.id, "q": queue, "a": job.attempt}
    if outcome.ok:
        ttl = _safe_ttl(job, "result_ttl", DEFAULT_RESULT_TTL)
        return {**base, "s": "finished", "f": ["status", "finished", "result", storable(outcome.result)], "ttl": ttl}
    exc_info = storable(outcome.exc_info or "")
    if outcome.postpone is not None:  # not a failure: no retry used, nothing counted
        return {**base, "s": "retry", "f": ["exc_info", exc_info], "delay": outcome.postpone}
    retries_left = _safe_int(job._get("retries_left"))
    if retries_left > 0 and outcome.retry:
        used = _safe_int(job._get("retries_used"))
        delay = max(retry_delay(_safe_intervals(job), used), outcome.retry_after or 0.0)
        fields = ["retries_left", str(retries_left - 1), "retries_used", str(used + 1), "exc_info", exc_info]
        return {**base, "s": "retry", "f": fields, "delay": delay}
    ttl = _safe_ttl(job, "failure_ttl", DEFAULT_FAILURE_TTL)
    return {**base, "s": "failed", "f": ["status", "failed", "exc_info", exc_info], "ttl": ttl}


def requeue_record(job: Job, queue: str) -> dict[str, Any]:
    """Cold shutdown: the job goes back to the front of its queue, unharmed."""
    return {"id": job.id, "q": queue, "a": job.attempt, "s": "requeue", "f": []}


def _safe_ttl(job: Job, name: str, default: int) -> int:
    """A TTL field someone corrupted falls back to the default rather than crash the worker."""
    try:
        value = job._int(name)
    except ValueError:
        log.warning("Job %s has an unreadable %s (%r); using %d", job.id, name, job._get(name), default)
        return default
    return default if value is None else value


def _safe_int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _safe_intervals(job: Job) -> list[float]:
    try:
        return [float(i) for i in job.retry_intervals]
    except (ValueError, TypeError):
        return []


def finish_args(records: list[dict[str, Any]]) -> list[Any]:
    """finish.lua's arguments for a batch of records: their number, then each
    flat. Redis makes a Lua string of each argument as it is; a JSON text
    would cost a decoded table per record."""
    args: list[Any] = [len(records)]
    for o in records:
        args += [o["id"], o["q"], o["a"], o["s"], o.get("ttl", o.get("delay", 0)), len(o["f"]), *o["f"]]
    return args


def batch_writes(writes: list[tuple[Job, str, Script, list[Any]]], prefixes: list[str]) -> list[tuple[Script, list[str]]]:
    """Job.write_on_success calls, one per script for all the jobs of a round
    trip, each behind the attempt fence (scripts/fence.lua)."""
    batches: dict[str, tuple[Script, list]] = {}
    for job, queue, script, argv in writes:
        batches.setdefault(script.sha, (fenced(script), []))[1].append([queue, job.id, job.attempt, argv])
    return [(script, [*prefixes, json.dumps(entries)]) for script, entries in batches.values()]


def report_write_errors(writes: list[tuple[Script, list[str]]], results: list) -> None:
    """A failing application script is the application's bug: logged, and the
    outcomes are recorded all the same."""
    for (script, _), result in zip(writes, results):
        if isinstance(result, Exception):
            log.error("Script %s (Job.write_on_success) failed: %s", script.name, result)
