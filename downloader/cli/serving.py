"""Long-running commands: a download worker, the offline demo gallery."""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from typing import Callable

import click
import redis

from jobqueue import Queue, Timing, Worker

from .. import disk, download, politeness
from ..config import Settings
from ..demo_server import DemoServer
from ..exceptions import ConfigError
from ..shards import deployed
from ..transfer.engine import driven
from . import common, connect, main

UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def byte_rate(text: str) -> int:
    """'500K', '2M', '1.5G', '100000' -> bytes a second."""
    value = text.strip().upper().removesuffix("B").removesuffix("/S")
    unit = value[-1:] if value[-1:] in UNITS else ""
    try:
        return int(float(value[:len(value) - len(unit)]) * UNITS[unit])
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a rate: bytes a second, e.g. 500K or 2M",
                                 param_hint="--limit-rate") from None


@main.command()
@common
@click.option("--concurrency", "-c", type=click.IntRange(min=1), help="parallel downloads [64]")
@click.option("--burst", is_flag=True, help="quit once nothing is left to download (one that waits out a pause or a "
              "retry is waited for)")
@click.option("--name", help="worker name (default host:pid)")
@click.option("--queue", help="queue to take downloads from [downloads]")
@click.option("--quiet", "-q", is_flag=True, help="log only warnings and errors")
@click.option("--limit-rate", metavar="RATE", help="bytes a second this worker may take in all, e.g. 500K or 2M, "
              "shared equally by its downloads [0: no cap]")
def work(settings: Settings, concurrency: int | None, burst: bool, name: str | None, queue: str | None,
         quiet: bool, limit_rate: str | None) -> None:
    """Run a download worker; start as many as you like, on any machine
    that reaches the same Redis and the same download directory. Requests
    to each host are limited across all workers (`fetch --per-host`)."""
    settings = settings.with_overrides(concurrency=concurrency, queue=queue,
                                       limit_rate=byte_rate(limit_rate) if limit_rate else None)
    politeness.DEFAULT_PER_HOST = settings.per_host  # for hosts no fetch named (a redirect's target)
    politeness.ENABLED = settings.per_host > 0         # 0: this worker ignores per-host limits
    download.RECV_LIMIT = settings.limit_rate // settings.concurrency if settings.limit_rate else 0
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
    timing = Timing.from_env()
    client = connect(settings, wait=timing.startup_wait)
    queues = [shard.queue(settings.queue) for shard in deployed(client, settings.shards)]  # one lane per shard
    def worker() -> Worker:
        # a download job starts its transfer on the libcurl loop and returns: the worker's thread calls it and
        # turns the loop itself, with no thread per job and no loop thread (jobqueue/worker/driven.py)
        return Worker(queues, name=name, concurrency=settings.concurrency, timing=timing,
                      allowed_modules=["downloader."], hold=disk.hold, loop=driven())
    gc.freeze()  # what exists now (modules, settings) lives as long as the process: left out of every collection
    if burst:
        burst_until_nothing_is_left(worker, queues)
    else:
        worker().work()


def burst_until_nothing_is_left(worker: Callable[[], Worker], queues: list[Queue]) -> None:
    """`work --burst` quits once nothing is left to download. A download
    waiting out a retry pause or a host's Retry-After (jobqueue's scheduled
    registry: a burst worker does not wait for it) is left to download, so the
    next one due is waited for, and then taken, by another burst. Redis lost
    between bursts is waited for by the next burst's start, as any worker's."""
    log = logging.getLogger(__name__)
    while True:
        run = worker()
        run.work(burst=True)
        if run.shutdown.stop_fetching:
            return
        try:
            due = [d for d in (q.scheduled_job_registry.next_due() for q in queues) if d is not None]
            waiting = sum(q.scheduled_job_registry.count for q in queues) if due else 0
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            log.warning("Lost Redis between bursts (%s); starting the next burst, which waits for it", exc)
            continue
        if not due:
            return
        log.info("%d download(s) wait out a pause before a retry; the next is due in %.1f s: waiting for it "
                 "(Ctrl+C quits)", waiting, min(due))
        try:
            time.sleep(min(due) + 0.05)
        except KeyboardInterrupt:
            return


@main.command("demo-server")
@click.option("--images", type=click.IntRange(min=1), default=120, show_default=True, help="images in the gallery")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8765, show_default=True, help="0 picks a free port")
@click.option("--latency", type=float, default=0.0, help="seconds added to every request")
@click.option("--videos", type=click.IntRange(min=0), default=4, show_default=True, help="video posts (mp4, gifv)")
@click.option("--throttle-every", type=click.IntRange(min=0), default=20, show_default=True,
              help="answer every Nth API request with 429 (Retry-After: 1), as Imgur does now and then; 0: never")
def demo_server(images: int, host: str, port: int, latency: float, videos: int, throttle_every: int) -> None:
    """Serve an Imgur-compatible gallery of generated images, for offline runs:
    every route `fetch` reads (gallery, sections, albums, posts, users, tags,
    subreddits, search), with titles, authors, paging and quota headers."""
    server = DemoServer(images, host, port, latency, videos=videos, throttle_every=throttle_every)
    click.echo(f"Demo gallery of {images} images and {videos} videos at {server.url} (any client id). Try:\n"
               f"  downloader fetch --client-id demo --api-url {server.url} --workers 2", err=True)
    click.echo(server.url, err=False)
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
