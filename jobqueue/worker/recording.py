"""Turning what happened to a job into the record ``finish.lua`` writes:
finished, failed, retried (now or later through the scheduled registry), or
put back on its queue by a cold shutdown; and batching the writes jobs asked
to have made with their success."""

from __future__ import annotations

import json
import logging
from typing import Any

from .. import timeutil
from ..job import Job
from ..retry import retry_delay
from ..scripts import Script
from .execution import Outcome

log = logging.getLogger("jobqueue.worker")


def _expiry(now: float, ttl: int | None) -> tuple[str, str]:
    """(expires_at field, registry score); a negative TTL keeps the job forever."""
    if ttl is not None and ttl < 0:
        return "-1", "+inf"
    return repr(now + (ttl or 0)), repr(now + (ttl or 0))


def settle_record(job: Job, queue: str, outcome: Outcome, now: float) -> dict[str, Any]:
    now_iso = timeutil.iso(now)
    if outcome.ok:
        expires, score = _expiry(now, job.result_ttl)
        fields = ["status", "finished", "ended_at", now_iso, "result", outcome.result, "expires_at", expires]
        return {"id": job.id, "q": queue, "s": "finished", "f": fields, "exp": score}
    retries_left = _safe_int(job._get("retries_left"))
    if retries_left > 0 and outcome.retry:
        intervals = _safe_intervals(job)
        used = _safe_int(job._get("retries_used"))
        delay = max(retry_delay(intervals, used), outcome.retry_after or 0.0)
        fields = ["retries_left", str(retries_left - 1), "retries_used", str(used + 1), "exc_info", outcome.exc_info,
                  "enqueued_at", now_iso, "status", "scheduled" if delay > 0 else "queued"]
        return {"id": job.id, "q": queue, "s": "retry", "f": fields, "at": now + delay if delay > 0 else None}
    expires, score = _expiry(now, job.failure_ttl)
    fields = ["status", "failed", "ended_at", now_iso, "exc_info", outcome.exc_info, "expires_at", expires]
    return {"id": job.id, "q": queue, "s": "failed", "f": fields, "exp": score}


def requeue_record(job_id: str, queue: str, now: float) -> dict[str, Any]:
    """Cold shutdown: the job goes back to the front of its queue, unharmed."""
    return {"id": job_id, "q": queue, "s": "requeue", "f": ["status", "queued", "enqueued_at", timeutil.iso(now)]}


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


def batch_writes(writes: list[tuple[Script, list[Any]]]) -> list[tuple[Script, list[str]]]:
    """Job.write_on_success calls, one per script for all the jobs of a round trip."""
    batches: dict[str, tuple[Script, list]] = {}
    for script, argv in writes:
        batches.setdefault(script.sha, (script, []))[1].append(argv)
    return [(script, [json.dumps(argvs)]) for script, argvs in batches.values()]


def report_write_errors(writes: list[tuple[Script, list[str]]], results: list) -> None:
    """A failing application script is the application's bug: logged, and the
    outcomes are recorded all the same."""
    for (script, _), result in zip(writes, results):
        if isinstance(result, Exception):
            log.error("Script %s (Job.write_on_success) failed: %s", script.name, result)
