"""Commands that enqueue downloads and follow them: fetch (and resume), retry."""

from __future__ import annotations

import json
import sys

import click

from .. import disk, politeness, repair
from ..config import Settings
from ..exceptions import SourceError, WorkersGone
from ..local import LocalWorkers
from ..politeness import host_of
from ..producer import Producer
from ..progress import summary, watch
from ..runs import Progress, Runs
from ..sources.imgur.gallery import SECTIONS, SORTS, WINDOWS
from . import common, main, redis_url, runs_for
from .reading import AUTO_RESUME, Plan, Want, batches, resumed_spec, source_for


@main.command()
@common
@click.argument("urls", metavar="[URL]...", nargs=-1)
@click.option("--client-id", envvar="DOWNLOADER_CLIENT_ID", help="Imgur API client id [env DOWNLOADER_CLIENT_ID]")
@click.option("--api-url", help="Imgur-compatible API base [https://api.imgur.com]")
@click.option("--search", metavar="QUERY", help="the Imgur gallery search for QUERY")
@click.option("--section", type=click.Choice(SECTIONS), help="a gallery section instead of the random gallery")
@click.option("--sort", type=click.Choice(SORTS), help="order of a section, tag, subreddit or search")
@click.option("--window", type=click.Choice(WINDOWS), help="time window of a top section, tag, subreddit or search")
@click.option("--pages", type=click.IntRange(min=1), help="pages to read [gallery: 1; a user, tag, subreddit or "
                                                            "search: all]")
@click.option("--videos", is_flag=True, help="also download videos (mp4, and gifv as mp4); images only by default")
@click.option("--links", "links_path", metavar="FILE", help="read URLs from FILE instead ('-' = stdin)")
@click.option("--name", "name_template", metavar="TEMPLATE", help="where each file goes in the run's directory, "
              "e.g. '{album_title|album_id}/{index:03}-{id}.{ext}' (fields: id title album_id album_title index "
              "author date ext kind) [env DOWNLOADER_NAME_TEMPLATE; default: album folders, else {id}.{ext}]")
@click.option("--metadata", is_flag=True, default=None, help="write a JSON sidecar beside each file (source URL, "
              "title, album, author, date, size, sha256)")
@click.option("--archive", metavar="NAME", help="download archive to skip and record items in [default]")
@click.option("--no-archive", is_flag=True, help="neither skip nor record archived items")
@click.option("--per-host", type=click.IntRange(min=1), help="requests in flight to one host from all workers [16; "
              "per host: the config file's hosts table]")
@click.option("--rate", type=click.FloatRange(min=0), help="request starts a second to one host from all workers "
                                                           "[0: no cap]")
@click.option("--resume", "resume_id", metavar="RUN", help="finish enqueueing an interrupted run, reading its "
              "source again (only links it lacks are enqueued)")
@click.option("--queue", help="jobqueue queue for the downloads [downloads]")
@click.option("--no-wait", is_flag=True, help="return right after enqueueing")
@click.option("--workers", type=click.IntRange(min=0), default=0, help="also start N local worker processes")
@click.option("--concurrency", type=click.IntRange(min=1), help="parallel downloads per local worker [64]")
@click.option("--strict", is_flag=True, help="a line of --links that is not an http(s) URL is an error")
@click.option("--quiet", "-q", is_flag=True, help="no progress and no summary: the run id line, errors, exit code")
@click.option("--json", "as_json", is_flag=True, help="no progress; the outcome as one JSON document on stdout")
def fetch(settings: Settings, urls: tuple[str, ...], client_id: str | None, api_url: str | None, search: str | None,
          section: str | None, sort: str | None, window: str | None, pages: int | None, videos: bool,
          links_path: str | None, name_template: str | None, metadata: bool | None, archive: str | None,
          no_archive: bool, per_host: int | None, rate: float | None, resume_id: str | None, queue: str | None, no_wait: bool, workers: int,
          concurrency: int | None, strict: bool, quiet: bool, as_json: bool) -> None:
    """Enqueue one download per unique file of the Imgur URLs given (an
    image, album, post, user, tag or subreddit), of --search or --section,
    of the random gallery (no URL), or of --links; then show progress.

    Items the download archive holds are left out; the same fetch run again
    while an earlier one of it was interrupted completes that run.

    Exit code 0 when every file was downloaded or already there, 1 if any
    failed, 130 on Ctrl+C (what is enqueued stays enqueued).
    """
    settings = settings.with_overrides(api_url=api_url, queue=queue, concurrency=concurrency,
                                       name_template=name_template, metadata=metadata,
                                       archive="" if no_archive else archive, per_host=per_host, rate=rate)
    no_wait_without_workers(no_wait, workers)
    runs = runs_for(settings)
    spec = resumed_spec(runs, resume_id) if resume_id else {}
    want = Want(urls, client_id, links_path, search, section, sort, window, pages, videos, strict,
                chatty=not (quiet or as_json))
    source = source_for(want, spec, settings, resume_id)
    layout = spec.get("layout") or {"name": settings.name_template, "metadata": settings.metadata,
                                    "archive": settings.archive}
    plan = Plan(source.description, {**source.spec, "layout": layout})
    stream = batches(source, layout, runs, plan)
    first = first_batch(stream, plan)
    if not first and not resume_id:
        archived = f" ({plan.archived} already in archive {layout['archive']!r}; --no-archive fetches them again)" \
            if plan.archived else ""
        click.echo(json.dumps({"runs": []}) if as_json else
                   f"{plan.description} gave nothing new to download{archived}.")
        return
    resume_id = resume_id or interrupted_run(runs, plan.spec, settings)
    producer = (Producer.resume(runs, resume_id, settings) if resume_id
                else Producer.new(runs, plan.description, plan.spec, settings))
    run_id, local, failure = producer.run_id, None, None
    hosts = Hosts(runs, settings)
    try:
        with producer:
            hosts.add(first)
            producer.add(first)  # workers start on it while the rest is read
            local = start_local_workers(workers, settings.with_overrides(queue=producer.settings.queue))
            try:
                for batch in stream:
                    hosts.add(batch)
                    producer.add(batch)
            except SourceError as exc:
                failure = exc
            if not (plan.cut_short or failure):
                producer.seal()
    except KeyboardInterrupt:
        if local is not None:
            local.stop()
        click.echo(f"\nInterrupted while enqueuing run {run_id} ({producer.added} new download(s) enqueued); "
                   f"`downloader fetch --resume {run_id}` enqueues the rest.", err=True)
        sys.exit(130)
    if failure or plan.cut_short:
        click.echo(f"{failure or plan.cut_short}: stopped reading after {plan.read} link(s). Run {run_id} stays "
                   f"open (interrupted) with {producer.added} download(s) enqueued; `downloader fetch --resume "
                   f"{run_id}` reads the rest later.", err=True)
    if not as_json:
        total = runs.progress(run_id).total
        left_out = f"{plan.read - plan.archived - producer.added} duplicate(s) dropped" + (
            f", {plan.archived} already in archive {layout['archive']!r}" if plan.archived else "")
        if resume_id:
            click.echo(f"Run {run_id} resumed: {producer.added} more download(s) enqueued on "
                       f"{producer.settings.queue!r} from {plan.description} ({total} in all)")
        else:
            click.echo(f"Run {run_id}: {producer.added} download(s) enqueued on {settings.queue!r} "
                       f"from {plan.description} ({left_out})")
    if failure:
        if local is not None:
            local.stop()
        sys.exit(1)
    if no_wait:
        if as_json:
            click.echo(outcome_json(runs, [runs.progress(run_id)]))
        elif not quiet:
            click.echo(f"Follow it with `downloader status {run_id} --watch`.")
        return
    finish(runs, [run_id], local, quiet, as_json)


def first_batch(stream, plan: Plan) -> list[tuple[str, dict]]:
    """The first batch with anything to enqueue ([] when the source has
    none). No run exists yet: a source that fails here enqueues nothing."""
    try:
        for batch in stream:
            if batch:
                return batch
    except SourceError as exc:
        raise click.ClickException(f"{exc}\nNothing was enqueued ({plan.read} link(s) had been read).") from None
    return []


class Hosts:
    """Registers each host's limits once, as its first link is enqueued."""

    def __init__(self, runs: Runs, settings: Settings) -> None:
        self.runs, self.settings, self.seen = runs, settings, set()
        self.netlocs: set[str] = set()  # the host part of links already looked at: most links repeat one

    def add(self, batch: list[tuple[str, dict]]) -> None:
        if len(self.netlocs) > 100_000:  # memory stays bounded whatever the links: registering again is harmless
            self.netlocs.clear()
            self.seen.clear()
        new = set()
        for url, _ in batch:
            netloc = url.split("/", 3)[2]  # (checked URLs: scheme://netloc/...)
            if netloc not in self.netlocs:
                self.netlocs.add(netloc)
                new.add(host_of(url))
        new -= self.seen
        if new:
            politeness.register(self.runs.connection, {host: self.settings.host_limits(host) for host in new},
                                self.runs.keys)
            self.seen |= new


def interrupted_run(runs: Runs, spec: dict, settings: Settings) -> str | None:
    """The newest interrupted run that read this very source into this
    directory: the same fetch again completes it."""
    if spec.get("kind") not in AUTO_RESUME:
        return None
    shown, _ = disk.placement(settings.dir, settings.root)
    for progress in runs.all(50):
        if progress.interrupted and progress.directory == shown and resumed_spec(runs, progress.run_id) == spec:
            click.echo(f"Run {progress.run_id} read this source into {shown} and was interrupted while enqueuing "
                       f"({progress.total} enqueued): completing it.", err=True)
            return progress.run_id
    return None


def start_local_workers(count: int, settings: Settings) -> LocalWorkers | None:
    """Workers on this machine for this run, stopped when it completes (not
    burst: retries wait in the scheduled registry)."""
    return LocalWorkers(count, settings, redis_url(settings)) if count else None


def no_wait_without_workers(no_wait: bool, workers: int) -> None:
    if no_wait and workers:
        raise click.UsageError("--workers starts workers that stop when the run completes, so it needs the wait: "
                               "drop --no-wait, or run `downloader work` yourself")


def finish(runs: Runs, run_ids: list[str], local: LocalWorkers | None, quiet: bool = False,
           as_json: bool = False) -> None:
    """Watch each run until it completes (the workers take them all at
    once), then print the summaries; exit 1 if any download failed or will
    not run (canceled, interrupted), or if the local workers exited first."""
    done: list[Progress] = []
    try:
        for run_id in run_ids:
            done.append(watch(runs, run_id, local, quiet=quiet or as_json))
    except KeyboardInterrupt:
        if local is not None:
            local.stop()
        stopped_watching(run_ids[len(done)])
    except WorkersGone as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    if local is not None:
        local.stop()
    if as_json:
        click.echo(outcome_json(runs, done))
    elif not quiet:
        for progress in done:
            click.echo(summary(runs, progress))
    sys.exit(0 if all(outcome_ok(progress) for progress in done) else 1)


def outcome_ok(progress: Progress) -> bool:
    return progress.complete and not progress.failed and not progress.canceled


def outcome_json(runs: Runs, done: list) -> str:
    """Runs' counts and failures, for scripts (`--json`)."""
    return json.dumps({"runs": [{**p.__dict__, "failures": runs.failures(p.run_id)} for p in done]}, indent=2)


def stopped_watching(run_id: str) -> None:
    """Ctrl+C while watching: exit 130, as a shell expects; the run goes on."""
    click.echo(f"\nStopped watching; what is enqueued stays enqueued: `downloader work` takes it up, "
               f"`downloader status {run_id} --watch` shows it.", err=True)
    sys.exit(130)


@main.command()
@common
@click.argument("run_id", required=False)
@click.option("--all-runs", is_flag=True, help="retry the failed downloads of every run")
@click.option("--url", "urls", multiple=True, help="retry only this URL (repeatable)")
@click.option("--no-wait", is_flag=True, help="return right after re-enqueueing")
@click.option("--workers", type=click.IntRange(min=0), default=0, help="also start N local worker processes")
@click.option("--quiet", "-q", is_flag=True, help="no progress and no summary: errors and the exit code")
@click.option("--json", "as_json", is_flag=True, help="no progress; the outcome as one JSON document on stdout")
def retry(settings: Settings, run_id: str | None, all_runs: bool, urls: tuple[str, ...], no_wait: bool,
          workers: int, quiet: bool, as_json: bool) -> None:
    """Re-enqueue the failed downloads of RUN (default: the latest), then show progress."""
    no_wait_without_workers(no_wait, workers)
    if all_runs and run_id:
        raise click.UsageError("give a RUN or --all-runs, not both")
    runs = runs_for(settings)
    targets = [p.run_id for p in runs.all(10_000) if not p.canceled] if all_runs else [run_id or runs.latest()]
    retried = []
    for target in targets:
        again = repair.retry(runs, target, settings, urls or None)
        if again:
            retried.append(target)
            if not (quiet or as_json):
                click.echo(f"Run {target}: {len(again)} failed download(s) re-enqueued")
    if not retried:
        if as_json:
            click.echo(json.dumps({"runs": []}))
        elif not quiet:
            click.echo("Nothing to retry: no failed downloads" + (" matching --url" if urls else "") + ".")
        return
    queues = {runs.queue_of(target) for target in retried}
    local = start_local_workers(workers, settings.with_overrides(queue=queues.pop() if len(queues) == 1 else None))
    if no_wait:
        if as_json:
            click.echo(outcome_json(runs, [runs.progress(target) for target in retried]))
        return
    finish(runs, retried, local, quiet, as_json)
