"""The ``downloader`` command: parses and presents; runs.py and download.py do the work."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from typing import Any, Callable

import click
import redis

from jobqueue import JobQueueError, Timing, Worker
from jobqueue import connection as jq_connection
from jobqueue import embedded

from . import disk, download
from .config import Settings, load
from .demo_server import DemoServer
from .exceptions import ConfigError, DownloaderError, SourceError, WorkersGone
from .local import LocalWorkers
from .progress import human_bytes, summary, watch, workers_view
from .runs import Runs
from .sources.imgur import ImgurGallery
from .sources.links_file import LinksFile

REDIS_SETTING = "--redis-url / DOWNLOADER_REDIS_URL / JOBQUEUE_REDIS_URL"  # how downloader is told where Redis is
WORK_THREADS = 4  # download jobs return futures in a fraction of a millisecond: a few threads start them all


def common(func: Callable[..., Any]) -> Callable[..., Any]:
    """--config, --redis-url, --dir on every command; errors become one line and exit 1."""
    @click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="DOWNLOADER_CONFIG",
                  help="settings file [env DOWNLOADER_CONFIG; default config/downloader.toml if present]")
    @click.option("--redis-url", help="Redis URL [env DOWNLOADER_REDIS_URL, then JOBQUEUE_REDIS_URL; default: "
                                      "the embedded redis-server]")
    @click.option("--dir", "directory", help="download directory of a new run [env DOWNLOADER_DIR; default "
                                               "downloads]; `work`: where to sweep abandoned part files")
    @click.option("--root", help="a shared root whose mount differs between machines [env DOWNLOADER_ROOT]: runs "
                                 "name their directory under it, and each worker maps it onto its own")
    @functools.wraps(func)
    def wrapper(config_path: str | None, redis_url: str | None, directory: str | None, root: str | None,
                **kwargs: Any) -> Any:
        try:
            settings = load(config_path, redis_url=redis_url, dir=directory, root=root)
            return func(settings, **kwargs)
        except (DownloaderError, JobQueueError) as exc:
            raise click.ClickException(str(exc)) from None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise click.ClickException(f"lost the connection to Redis ({exc}); is it running? "
                                       f"({REDIS_SETTING})") from None
    return wrapper


def redis_url(settings: Settings) -> str:
    """The configured URL, else the embedded server's (started if need be, and then said so)."""
    if settings.redis_url:
        return settings.redis_url
    server = embedded.ensure_running()
    if server.just_started:
        click.echo(embedded.announcement(server), err=True)
    return server.url


def connect(settings: Settings, check: bool = True) -> redis.Redis:
    """``check=False``: the caller waits for Redis itself (the worker)."""
    client = jq_connection.from_url(redis_url(settings))
    if check:
        jq_connection.check(client, REDIS_SETTING)
    return client


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jobqueue-downloader")
def main() -> None:
    """Download a whole image gallery fast, with as many workers as you like.

    \b
    downloader fetch --client-id X        enqueue a gallery, show progress
    downloader work                       a download worker (run many, anywhere)
    downloader status / runs / retry      watch and repair runs from any machine

    With no Redis URL configured, a private redis-server on this machine is used.
    """


@main.command()
@common
@click.option("--client-id", envvar="DOWNLOADER_CLIENT_ID", help="Imgur API client id [env DOWNLOADER_CLIENT_ID]")
@click.option("--api-url", help="Imgur-compatible API base [https://api.imgur.com]")
@click.option("--pages", type=click.IntRange(min=1), help="gallery pages to fetch [1]")
@click.option("--links", "links_path", metavar="FILE", help="read URLs from FILE instead ('-' = stdin)")
@click.option("--queue", help="jobqueue queue for the downloads [downloads]")
@click.option("--no-wait", is_flag=True, help="return right after enqueueing")
@click.option("--workers", type=click.IntRange(min=0), default=0, help="also start N local worker processes")
@click.option("--concurrency", type=click.IntRange(min=1), help="parallel downloads per local worker [64]")
@click.option("--strict", is_flag=True, help="a line of --links that is not an http(s) URL is an error")
@click.option("--quiet", "-q", is_flag=True, help="no progress and no summary: the run id line, errors, exit code")
@click.option("--json", "as_json", is_flag=True, help="no progress; the outcome as one JSON document on stdout")
def fetch(settings: Settings, client_id: str | None, api_url: str | None, pages: int | None, links_path: str | None,
          queue: str | None, no_wait: bool, workers: int, concurrency: int | None, strict: bool, quiet: bool,
          as_json: bool) -> None:
    """Enqueue one download per unique image URL, then show progress until done.

    Exit code 0 when every file was downloaded or already there, 1 if any failed.
    """
    settings = settings.with_overrides(api_url=api_url, pages=pages, queue=queue, concurrency=concurrency)
    no_wait_without_workers(no_wait, workers)
    if links_path and client_id:
        raise click.UsageError("use either --links FILE or --client-id, not both")
    if not links_path and not client_id:
        raise click.UsageError("say where the links come from: --client-id X (Imgur API) or --links FILE")
    source = LinksFile(links_path, strict) if links_path else ImgurGallery(
        client_id, settings.api_url, settings.pages, (settings.connect_timeout, settings.read_timeout))
    if isinstance(source, ImgurGallery) and not (quiet or as_json):
        source.on_page = lambda read, pages, found: click.echo(
            f"Read gallery page {read} of {pages}: {found} image link(s) so far", err=True)
    client = connect(settings)
    links: list[str] = []
    try:
        links.extend(source.links())
    except SourceError as exc:
        raise click.ClickException(f"{exc}\nNothing was enqueued ({len(links)} link(s) had been read).") from None
    rejected = getattr(source, "rejected", [])
    if rejected:
        shown = "".join(f"\n  line {n}: {line!r} ({why})" for n, line, why in rejected[:10])
        more = f"\n  ... and {len(rejected) - 10} more" if len(rejected) > 10 else ""
        click.echo(f"Skipped {len(rejected)} line(s) of {source.description} that are not http(s) URLs "
                   f"(--strict makes this an error):{shown}{more}", err=True)
    if not links:
        click.echo(json.dumps({"runs": []}) if as_json else f"{source.description} gave no image links: nothing to download.")
        return
    runs = Runs(client)
    run_id, unique = runs.create(links, source.description, settings)
    if not as_json:
        click.echo(f"Run {run_id}: {len(unique)} download(s) enqueued on {settings.queue!r} "
                   f"from {source.description} ({len(links) - len(unique)} duplicate(s) dropped)")
    local = start_local_workers(workers, settings)
    if no_wait:
        if as_json:
            click.echo(outcome_json(runs, [runs.progress(run_id)]))
        elif not quiet:
            click.echo(f"Follow it with `downloader status {run_id} --watch`.")
        return
    finish(runs, [run_id], local, quiet, as_json)


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
    once), then print the summaries; exit 1 if any download failed, or if
    the local workers exited first."""
    done = []
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
    sys.exit(1 if any(progress.failed for progress in done) else 0)


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
@click.option("--concurrency", "-c", type=click.IntRange(min=1), help="parallel downloads [64]")
@click.option("--burst", is_flag=True, help="quit when there is nothing left to download")
@click.option("--name", help="worker name (default host:pid)")
@click.option("--queue", help="queue to take downloads from [downloads]")
@click.option("--quiet", "-q", is_flag=True, help="log only warnings and errors")
def work(settings: Settings, concurrency: int | None, burst: bool, name: str | None, queue: str | None,
         quiet: bool) -> None:
    """Run a download worker; start as many as you like, on any machine
    that reaches the same Redis and the same download directory."""
    settings = settings.with_overrides(concurrency=concurrency, queue=queue)
    logging.basicConfig(level="WARNING" if quiet else "INFO", format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    disk.WORKER_ROOT = settings.root or None
    if settings.root and not os.path.isdir(settings.root):
        raise ConfigError(f"--root {settings.root} is not a directory; give this machine's mount of the shared root")
    if os.path.exists(settings.dir) and not os.path.isdir(settings.dir):
        raise ConfigError(f"--dir {settings.dir} is not a directory; give the download directory")
    if settings.stale_part_age and os.path.isdir(settings.dir):
        if settings.stale_part_age <= settings.read_timeout:
            raise ConfigError(f"stale_part_age ({settings.stale_part_age:g} s) must exceed read_timeout "
                              f"({settings.read_timeout:g} s), or a live download's part file could be swept; "
                              "0 turns sweeping off")
        swept = download.sweep_stale_parts(settings.dir, settings.stale_part_age)
        if swept:
            logging.getLogger(__name__).warning("Removed %d abandoned .part file(s) older than %g s from %s",
                                                swept, settings.stale_part_age, settings.dir)
    worker = Worker([settings.queue], connect(settings, check=False), name=name, concurrency=settings.concurrency,
                    timing=Timing.from_env(), allowed_modules=["downloader."], hold=disk.hold,
                    threads=WORK_THREADS)
    worker.work(burst=burst)


@main.command()
@common
@click.argument("run_id", required=False)
@click.option("--watch", "-w", "watching", is_flag=True, help="show a progress bar until the run completes")
@click.option("--json", "as_json", is_flag=True, help="print counts and failures as JSON")
def status(settings: Settings, run_id: str | None, watching: bool, as_json: bool) -> None:
    """Progress of RUN (default: the latest), its failures, and the live workers."""
    runs = Runs(connect(settings))
    run_id = run_id or runs.latest()
    try:
        progress = watch(runs, run_id) if watching else runs.progress(run_id)
    except KeyboardInterrupt:
        stopped_watching(run_id)
    if as_json:
        click.echo(json.dumps({**progress.__dict__, "failures": runs.failures(run_id)}, indent=2))
        return
    click.echo(summary(runs, progress))
    click.echo(workers_view(runs, runs.queue_of(run_id)))
    if watching:
        sys.exit(1 if progress.failed else 0)


@main.command("runs")
@common
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
def list_runs(settings: Settings, limit: int) -> None:
    """List runs, newest first, with their counts."""
    rows = Runs(connect(settings)).all(limit)
    if not rows:
        click.echo("No runs yet: start one with `downloader fetch`.")
        return
    click.echo(f"{'RUN':<22} {'TOTAL':>6} {'DONE':>6} {'SKIP':>6} {'FAIL':>6} {'PEND':>6} {'BYTES':>10}  SOURCE")
    for p in rows:
        click.echo(f"{p.run_id:<22} {p.total:>6} {p.done:>6} {p.skipped:>6} {p.failed:>6} "
                   f"{p.total - p.settled:>6} {human_bytes(p.bytes):>10}  {p.source}")


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
    runs = Runs(connect(settings))
    targets = [p.run_id for p in runs.all(10_000)] if all_runs else [run_id or runs.latest()]
    retried = []
    for target in targets:
        again = runs.retry(target, settings, urls or None)
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


@main.command()
@common
@click.argument("run_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="print them as JSON")
def failed(settings: Settings, run_id: str | None, as_json: bool) -> None:
    """List the failed downloads of RUN (default: the latest) with their reasons."""
    runs = Runs(connect(settings))
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


@main.command("demo-server")
@click.option("--images", type=click.IntRange(min=1), default=120, show_default=True, help="images in the gallery")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8765, show_default=True, help="0 picks a free port")
@click.option("--latency", type=float, default=0.0, help="seconds added to every request")
def demo_server(images: int, host: str, port: int, latency: float) -> None:
    """Serve an Imgur-compatible gallery of generated images, for offline runs."""
    server = DemoServer(images, host, port, latency)
    click.echo(f"Demo gallery of {images} images at {server.url} (any client id). Try:\n"
               f"  downloader fetch --client-id demo --api-url {server.url} --workers 2", err=True)
    click.echo(server.url, err=False)
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
