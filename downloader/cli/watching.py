"""Commands that read runs from any machine: status, runs, failed."""

from __future__ import annotations

import json
import re
import sys
import time

import click

from .. import lifecycle, politeness, repair
from ..config import Settings
from ..progress import human_bytes, summary, watch, workers_view
from . import common, main, runs_for
from .producing import outcome_ok, stopped_watching

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@main.command()
@common
@click.argument("run_id", required=False)
@click.option("--watch", "-w", "watching", is_flag=True, help="show a progress bar until the run completes")
@click.option("--json", "as_json", is_flag=True, help="print counts and failures as JSON")
@click.option("--quiet", "-q", is_flag=True, help="print nothing; exit 0 only if the run is complete and "
                                                  "nothing failed")
def status(settings: Settings, run_id: str | None, watching: bool, as_json: bool, quiet: bool) -> None:
    """Progress of RUN (default: the latest), its failures, and the live workers.

    Exit code: with --watch or --quiet, 0 when the run is complete and nothing
    failed, else 1; otherwise 0 whenever the run was shown.
    """
    runs = runs_for(settings)
    run_id = run_id or runs.latest()
    try:
        progress = watch(runs, run_id, quiet=quiet or as_json) if watching else runs.progress(run_id)
    except KeyboardInterrupt:
        stopped_watching(run_id)
    if not watching and not progress.complete and repair.nothing_live(runs, run_id, runs.queue_of(run_id)):
        if repair.settle_vanished(runs, run_id):
            progress = runs.progress(run_id)
    if quiet:
        sys.exit(0 if outcome_ok(progress) else 1)
    if as_json:
        click.echo(json.dumps({**progress.__dict__, "failures": runs.failures(run_id)}, indent=2))
        return
    click.echo(summary(runs, progress))
    click.echo(workers_view(runs, run_id, runs.queue_of(run_id)))
    for host, left in politeness.throttled(runs.connection, runs.keys):
        click.echo(f"Host {host} asked for a pause (Retry-After): no worker calls it for another {left:.0f} s, "
                   f"until {time.strftime('%H:%M:%S', time.localtime(time.time() + left))}.")
    if watching:
        sys.exit(0 if outcome_ok(progress) else 1)


def duration(text: str) -> float:
    """'90', '90s', '30m', '12h', '7d', '2w' -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration: a number of seconds, or with s, m, h, d or w "
                                 "(e.g. 7d)", param_hint="--older-than")
    return float(match[1]) * UNITS[match[2] or "s"]


@main.command("runs")
@common
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--prune", is_flag=True, help="delete complete (and canceled) runs: their records and jobs; "
                                            "the files stay")
@click.option("--older-than", metavar="AGE", default="0", help="with --prune: only runs complete for at least "
                                                               "AGE (e.g. 90s, 12h, 7d) [0]")
def list_runs(settings: Settings, limit: int, prune: bool, older_than: str) -> None:
    """List runs, newest first, with their counts (or prune the complete ones)."""
    runs = runs_for(settings)
    if prune:
        pruned = lifecycle.prune(runs, duration(older_than))
        click.echo(f"Pruned {len(pruned)} complete run(s)" + (f": {', '.join(pruned)}" if pruned else "."))
        return
    rows = runs.all(limit)
    if not rows:
        click.echo("No runs yet: start one with `downloader fetch`.")
        return
    click.echo(f"{'RUN':<22} {'STATE':<11} {'TOTAL':>6} {'DONE':>6} {'SKIP':>6} {'FAIL':>6} {'PEND':>6} "
               f"{'BYTES':>10}  SOURCE")
    for p in rows:
        state = "interrupted" if p.interrupted else "complete" if p.complete and not p.canceled else p.state
        click.echo(f"{p.run_id:<22} {state:<11} {p.total:>6} {p.done:>6} {p.skipped:>6} {p.failed:>6} "
                   f"{p.total - p.settled:>6} {human_bytes(p.bytes):>10}  {p.source}")


@main.command()
@common
@click.argument("run_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="print them as JSON")
def failed(settings: Settings, run_id: str | None, as_json: bool) -> None:
    """List the failed downloads of RUN (default: the latest) with their reasons."""
    runs = runs_for(settings)
    run_id = run_id or runs.latest()
    runs.progress(run_id)  # raises RunNotFound
    failures = sorted(runs.failures(run_id).items())
    if as_json:
        click.echo(json.dumps({"run": run_id, "failed": [{"url": u, "reason": why} for u, why in failures]}, indent=2))
        return
    if not failures:
        click.echo(f"No failed downloads in run {run_id}.")
        return
    click.echo(f"{len(failures)} failed download(s) in run {run_id} (re-run them with `downloader retry {run_id}`):")
    for url, why in failures:
        click.echo(f"  {url}\n      {why}")
