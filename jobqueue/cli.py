"""The ``jobqueue`` command: parses and presents; the library does the work."""

from __future__ import annotations

import functools
import gc
import json
import logging
import os
import sys
import time
from typing import Any, Callable

import click
import redis

from . import connection as connection_mod
from . import embedded, timeutil
from .backend import Backend, explained
from .exceptions import JobQueueError
from .job import Job
from .queue import Queue
from .registry import REGISTRIES, FailedJobRegistry
from .retry import Retry
from .worker import Timing, Worker, list_workers
from .worker.monitor import age_seconds

url_option = click.option("--url", "-u", envvar="JOBQUEUE_REDIS_URL", metavar="URL",
                          help="Redis URL (redis://, rediss://, unix://) [env JOBQUEUE_REDIS_URL; "
                               "default: the embedded private redis-server]")
prefixes_option = click.option(
    "--prefix", "prefixes", envvar="JOBQUEUE_PREFIX", multiple=True, metavar="PREFIX",
    help="key prefix (namespace), to share one Redis between apps; repeat it for queues in several namespaces, "
         "e.g. shards on a Redis Cluster's masters [env JOBQUEUE_PREFIX, space-separated; default jobqueue:]")
prefix_option = click.option("--prefix", envvar="JOBQUEUE_PREFIX", default=None, metavar="PREFIX",
                             help="key prefix, to share one Redis between apps [env JOBQUEUE_PREFIX; default jobqueue:]")


def friendly_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Known failures become one line on stderr and exit code 1, not a traceback."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except JobQueueError as exc:
            raise click.ClickException(str(exc)) from None
        except (UnicodeEncodeError, redis.exceptions.ResponseError) as exc:
            if explained(exc) is None:
                raise
            raise click.ClickException(explained(exc)) from None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise click.ClickException(f"lost the connection to Redis ({exc}); check that it is running "
                                       "and that --url / JOBQUEUE_REDIS_URL is right") from None
    return wrapper


def client_for(url: str | None, startup_wait: float = 0.0) -> redis.Redis:
    """A checked client (waiting up to ``startup_wait`` seconds for Redis);
    a cluster client when the URL names a Redis Cluster node."""
    return connection_mod.ready(connection_mod.resolve(url=url), connection_mod.configured_url(url),
                                wait=startup_wait)


def backend_for(url: str | None, prefix: str | None) -> Backend:
    """The one namespace a command other than worker and info works on."""
    if prefix is not None and len(prefix.split()) > 1:
        raise click.UsageError(f"--prefix / JOBQUEUE_PREFIX names several namespaces ({prefix!r}); this command "
                               "works on one: pass --prefix PREFIX")
    return Backend(client_for(url), prefix)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jobqueue-downloader")
def main() -> None:
    """jobqueue: an RQ-style job queue on Redis that never loses a job.

    With no --url and no JOBQUEUE_REDIS_URL, commands use a private
    redis-server that jobqueue starts for you on 127.0.0.1.
    """


@main.command()
@click.argument("queues", nargs=-1)
@url_option
@prefixes_option
@click.option("--burst", "-b", is_flag=True, help="quit when the queues are empty")
@click.option("--name", "-n", help="worker name (default host:pid)")
@click.option("--concurrency", "-c", type=click.IntRange(min=1), default=1, show_default=True,
              help="jobs run at once (thread slots, or work horses with --fork)")
@click.option("--fork", is_flag=True, help="run each job in a forked work horse, as RQ does")
@click.option("--threads", type=click.IntRange(min=1),
              help="threads that call job functions [the concurrency]; a job that returns a Future needs none "
                   "while it waits")
@click.option("--max-jobs", type=click.IntRange(min=1), help="quit after taking this many jobs")
@click.option("--path", "paths", multiple=True, default=["."], show_default=True,
              help="add a directory to the import path (repeatable)")
@click.option("--allow", "allowed", multiple=True, metavar="PREFIX",
              help="run only functions defined under this module prefix (repeatable; JOBQUEUE_ALLOW, comma-"
                   "separated); default: the application's own modules, not the standard library or "
                   "site-packages; '*': anything importable")
@click.option("--allow-pickle", is_flag=True, help="also run jobs stored with pickle (trust everyone who can write to Redis)")
@click.option("--heartbeat-interval", type=float, help="seconds between heartbeats [10]")
@click.option("--heartbeat-ttl", type=float, help="seconds of silence after which a worker is dead [30]")
@click.option("--maintenance-interval", type=float, help="seconds between reaper passes [15]")
@click.option("--with-scheduler", is_flag=True, hidden=True, help="accepted for RQ users: every worker schedules")
@click.option("--verbose", "-v", "verbosity", flag_value="DEBUG", help="log more (results, timings)")
@click.option("--quiet", "-q", "verbosity", flag_value="WARNING", help="log only warnings and errors")
@friendly_errors
def worker(queues: tuple[str, ...], url: str | None, prefixes: tuple[str, ...], burst: bool, name: str | None,
           concurrency: int, fork: bool, threads: int | None, max_jobs: int | None, paths: tuple[str, ...], allowed: tuple[str, ...],
           allow_pickle: bool, heartbeat_interval: float | None, heartbeat_ttl: float | None,
           maintenance_interval: float | None, with_scheduler: bool, verbosity: str | None) -> None:
    """Run jobs from QUEUES (default: default), earlier queues first; with
    several --prefix, from the QUEUES of each namespace, taking turns."""
    for path in reversed(paths):
        if path not in sys.path:
            sys.path.insert(0, path)
    logging.basicConfig(level=verbosity or "INFO", format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    timing = Timing.from_env(heartbeat_interval=heartbeat_interval, heartbeat_ttl=heartbeat_ttl,
                             maintenance_interval=maintenance_interval)
    allowed = allowed or tuple(p for p in os.environ.get("JOBQUEUE_ALLOW", "").replace(",", " ").split() if p)
    client = client_for(url, startup_wait=timing.startup_wait)
    served = [Queue(q, Backend(client, prefix)) for prefix in prefixes or [None] for q in queues or ["default"]]
    w = Worker(served, name=name, concurrency=concurrency, fork=fork, timing=timing, allowed_modules=allowed,
               allow_pickle=allow_pickle, threads=threads)
    gc.freeze()  # what exists now (modules, the worker) lives as long as the process: left out of every collection
    w.work(burst=burst, max_jobs=max_jobs)


def queue_counts(backend: Backend, names: list[str]) -> list[dict[str, Any]]:
    """One round trip for all counts (LLEN and ZCARD are O(1))."""
    pipe = backend.connection.pipeline(transaction=False)
    for name in names:
        pipe.llen(backend.keys.queue(name))
        for kind in REGISTRIES:
            pipe.zcard(backend.keys.registry(kind, name))
    values = pipe.execute()
    width = 1 + len(REGISTRIES)
    rows = []
    for i, name in enumerate(names):
        counts = values[i * width:(i + 1) * width]
        rows.append({"queue": name, "queued": counts[0], **dict(zip(REGISTRIES, counts[1:]))})
    return rows


def render_info(backend: Backend, only: tuple[str, ...]) -> str:
    names = list(only) or [q.name for q in Queue.all(backend)]
    rows = queue_counts(backend, names)
    cols = ["queued", "started", "scheduled", "finished", "failed", "canceled"]
    width = max([5] + [len(r["queue"]) for r in rows])
    lines = [f"{'QUEUE':<{width}}  " + "  ".join(f"{c.upper():>9}" for c in cols)]
    for r in rows:
        lines.append(f"{r['queue']:<{width}}  " + "  ".join(f"{r[c]:>9}" for c in cols))
    lines.append(f"{len(rows)} queue(s), {sum(r['queued'] for r in rows)} job(s) waiting")
    lines.append("")
    workers = [w for w in list_workers(backend) if not only or set(w.queues) & set(only)]
    for w in workers:
        age = age_seconds(w.last_heartbeat)
        beat = f"{age:.0f}s ago" if age is not None else "?"
        lines.append(f"{w.name} ({w.state}, {w.mode} x{w.concurrency}) on {', '.join(w.queues)}: "
                     f"{w.successful_job_count} ok, {w.failed_job_count} failed, heartbeat {beat}")
        for job_id, description in w.current_jobs:
            lines.append(f"    running {description} ({job_id})")
    lines.append(f"{len(workers)} worker(s)")
    return "\n".join(lines)


@main.command()
@click.argument("queues", nargs=-1)
@url_option
@prefixes_option
@click.option("--interval", "-i", type=float, help="refresh every S seconds until Ctrl+C")
@click.option("--json", "as_json", is_flag=True, help="print queues and workers as JSON")
@friendly_errors
def info(queues: tuple[str, ...], url: str | None, prefixes: tuple[str, ...], interval: float | None,
         as_json: bool) -> None:
    """Show queues (jobs per state) and workers (state, current jobs), of
    each namespace given by --prefix."""
    client = client_for(url)
    backends = [Backend(client, prefix) for prefix in prefixes or [None]]
    if as_json:
        shown = []
        for backend in backends:
            names = list(queues) or [q.name for q in Queue.all(backend)]
            workers = [w.__dict__ | {"state": w.state} for w in list_workers(backend)]
            shown.append({"prefix": backend.keys.prefix, "queues": queue_counts(backend, names), "workers": workers})
        click.echo(json.dumps(shown[0] if len(shown) == 1 else {"namespaces": shown}, indent=2))
        return

    def render() -> str:
        if len(backends) == 1:
            return render_info(backends[0], queues)
        return "\n\n".join(f"namespace {b.keys.prefix}\n{render_info(b, queues)}" for b in backends)

    if interval is None:
        click.echo(render())
        return
    try:  # Ctrl+C at any moment ends the watch quietly
        while True:
            text = render()
            click.clear()
            click.echo(f"{timeutil.iso()}  (every {interval:g} s, Ctrl+C to stop)\n{text}")
            time.sleep(interval)
    except KeyboardInterrupt:
        return


@main.command()
@click.argument("job_ids", nargs=-1)
@click.option("--queue", "-q", "queue_name", default="default", show_default=True)
@click.option("--all", "-a", "all_jobs", is_flag=True, help="requeue every failed job of the queue")
@url_option
@prefix_option
@friendly_errors
def requeue(job_ids: tuple[str, ...], queue_name: str, all_jobs: bool, url: str | None, prefix: str | None) -> None:
    """Put failed jobs back on their queue."""
    if not job_ids and not all_jobs:
        raise click.UsageError("give job ids, or --all to requeue every failed job of the queue")
    registry = FailedJobRegistry(queue_name, backend_for(url, prefix))
    if all_jobs:
        count = registry.requeue_all()
    else:
        done = registry.requeue_many(list(job_ids))
        missing = sorted(set(job_ids) - set(done))
        count = len(done)
        if missing:
            click.echo(f"not in the failed registry of {queue_name!r}: {', '.join(missing)}", err=True)
            click.echo(f"Requeued {count} job(s)")
            sys.exit(1)
    click.echo(f"Requeued {count} job(s)")


@main.command()
@click.argument("queues", nargs=-1, required=True)
@url_option
@prefix_option
@friendly_errors
def empty(queues: tuple[str, ...], url: str | None, prefix: str | None) -> None:
    """Remove every waiting job from QUEUES."""
    backend = backend_for(url, prefix)
    for name in queues:
        click.echo(f"{Queue(name, backend).empty()} job(s) removed from {name}")


def parse_job_argument(text: str) -> tuple[str | None, Any]:
    """``value`` is a string, ``:value`` is JSON, ``key=value`` / ``key=:value`` a keyword (as in `rq enqueue`)."""
    key = None
    if "=" in text and text.split("=", 1)[0].isidentifier():
        key, text = text.split("=", 1)
    if text.startswith(":"):
        try:
            return key, json.loads(text[1:])
        except ValueError as exc:
            raise click.BadParameter(f"{text!r} is not valid JSON after ':' ({exc})") from None
    return key, text


@main.command()
@click.argument("function")
@click.argument("arguments", nargs=-1)
@click.option("--queue", "-q", "queue_name", default="default", show_default=True)
@click.option("--timeout", type=int, help="job timeout in seconds [180]")
@click.option("--result-ttl", type=int, help="seconds to keep the result [500]")
@click.option("--retry", "retries", type=click.IntRange(min=1), help="retry this many times on failure")
@click.option("--job-id", help="a job id of your own")
@url_option
@prefix_option
@friendly_errors
def enqueue(function: str, arguments: tuple[str, ...], queue_name: str, timeout: int | None, result_ttl: int | None,
            retries: int | None, job_id: str | None, url: str | None, prefix: str | None) -> None:
    """Enqueue FUNCTION (pkg.module.func) with ARGUMENTS; prints the job id.

    An argument is a string; ':JSON' is a JSON value; 'key=value' a keyword argument.
    """
    args, kwargs = [], {}
    for text in arguments:
        key, value = parse_job_argument(text)
        if key is None:
            args.append(value)
        else:
            kwargs[key] = value
    job = Queue(queue_name, backend_for(url, prefix)).enqueue_call(
        function, args, kwargs, timeout=timeout, result_ttl=result_ttl, job_id=job_id,
        retry=Retry(retries) if retries else None)
    click.echo(job.id)


@main.command("job")
@click.argument("job_id")
@url_option
@prefix_option
@friendly_errors
def show_job(job_id: str, url: str | None, prefix: str | None) -> None:
    """Print one job as JSON (status, timestamps, result or error)."""
    click.echo(json.dumps(Job.fetch(job_id, backend_for(url, prefix)).to_dict(), indent=2, default=str))


@main.group("embedded")
def embedded_group() -> None:
    """The private redis-server used when no URL is configured."""


@embedded_group.command("status")
def embedded_status() -> None:
    """Say whether it runs, where, and with what data directory."""
    server = embedded.status()
    if server is None:
        click.echo(f"not running (data directory {embedded.data_dir()})")
        sys.exit(3)
    click.echo(f"running: pid {server.pid}, 127.0.0.1:{server.port}, data {server.directory}")


@embedded_group.command("start")
@friendly_errors
def embedded_start() -> None:
    """Start it (or reuse the running one)."""
    server = embedded.ensure_running()
    click.echo(f"running: pid {server.pid}, 127.0.0.1:{server.port}, data {server.directory}")


@embedded_group.command("stop")
def embedded_stop() -> None:
    """Stop it; its data stays in the data directory (AOF)."""
    click.echo("stopped" if embedded.stop() else "was not running")


if __name__ == "__main__":
    main()
