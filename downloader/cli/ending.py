"""Commands that end runs: cancel, delete (and `runs --prune`, in watching.py)."""

from __future__ import annotations

import click

from .. import lifecycle
from ..config import Settings
from . import common, main, runs_for


@main.command()
@common
@click.argument("run_id")
def cancel(settings: Settings, run_id: str) -> None:
    """Cancel RUN: its waiting downloads are removed from the queue, running
    ones stop within a heartbeat (their part files go), and a fetch still
    enqueueing it stops. Files already saved stay; the run's record stays
    (and expires) until `downloader delete`."""
    runs = runs_for(settings)
    canceled = lifecycle.cancel(runs, run_id)
    progress = runs.progress(run_id)
    click.echo(f"Run {run_id} canceled: {canceled} download(s) that waited or ran were stopped "
               f"({progress.done} done, {progress.skipped} skipped, {progress.failed} failed before that).")


@main.command()
@common
@click.argument("run_ids", metavar="RUN...", nargs=-1, required=True)
def delete(settings: Settings, run_ids: tuple[str, ...]) -> None:
    """Delete RUN: cancel what still waits or runs, then remove its record,
    its failures and its jobs from Redis. Downloaded files stay on disk."""
    runs = runs_for(settings)
    for run_id in run_ids:
        jobs = lifecycle.delete(runs, run_id)
        click.echo(f"Run {run_id} deleted ({jobs} job record(s) removed; its files stay on disk).")
