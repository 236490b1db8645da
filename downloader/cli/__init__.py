"""The ``downloader`` command: parses and presents; runs.py, producer.py and
download.py do the work. One module per group of commands:
producing (fetch, retry), watching (status, runs, failed), ending (cancel,
delete), serving (work, demo-server), archiving (archive)."""

from __future__ import annotations

import functools
from typing import Any, Callable

import click
import redis

from jobqueue import JobQueueError
from jobqueue import connection as jq_connection
from jobqueue import embedded
from jobqueue.backend import explained

from ..config import Settings, load
from ..exceptions import DownloaderError
from ..runs import Runs

REDIS_SETTING = "--redis-url / DOWNLOADER_REDIS_URL / JOBQUEUE_REDIS_URL"  # how downloader is told where Redis is


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
        except (UnicodeEncodeError, redis.exceptions.ResponseError) as exc:
            if explained(exc) is None:
                raise
            raise click.ClickException(explained(exc)) from None
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


def connect(settings: Settings, wait: float = 0.0) -> redis.Redis:
    """A checked client (``wait``: seconds to wait for Redis, as a worker
    starting beside it does); a cluster client when the URL names a node of
    a Redis Cluster."""
    url = redis_url(settings)
    return jq_connection.ready(jq_connection.from_url(url), url, REDIS_SETTING, wait)


def runs_for(settings: Settings) -> Runs:
    """The runs of the deployment (its shards: see shards.py)."""
    return Runs.sharded(connect(settings), settings.shards)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jobqueue-downloader")
def main() -> None:
    """Download a whole image gallery fast, with as many workers as you like.

    \b
    downloader fetch --client-id X        enqueue a gallery, show progress
    downloader work                       a download worker (run many, anywhere)
    downloader status / runs / retry      watch and repair runs from any machine
    downloader cancel / delete            stop a run; forget it
    downloader archive                    what later fetches skip

    With no Redis URL configured, a private redis-server on this machine is used.
    """



from . import archiving, ending, producing, serving, watching  # noqa: E402,F401  (they add the commands)
