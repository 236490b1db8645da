"""Runs: one `fetch` = one run, whose progress any machine can read in O(1).

A run's lifecycle (its ``state``): ``enqueuing`` while a producer holds its
lease and writes batches (producer.py), ``enqueued`` once every link it read
is a job, ``canceled`` (lifecycle.py). Its total is the number of jobs that
really exist: each job and its URL are written in one atomic step.
A complete run expires ``keep_runs`` seconds after its last change."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from importlib import resources

import redis

from jobqueue import Job, Queue, Script
from jobqueue.backend import storable, text, text_dict

from . import disk
from .exceptions import PermanentDownloadError, RunNotFound
from .keys import STATES, Keys
from .naming import place
from .shards import Shard, deployed, home, layout, of_jobs, pick
from .transfer import discard_parts

_by_namespace: dict[tuple[int, str], "Runs"] = {}
_SCRIPTS = resources.files(__package__).joinpath("scripts")
_RUN_LIB = _SCRIPTS.joinpath("run.lua").read_text()
MARK = Script("downloader.mark", _RUN_LIB + _SCRIPTS.joinpath("mark.lua").read_text())
STATE = Script("downloader.state", _RUN_LIB + _SCRIPTS.joinpath("state.lua").read_text())
BEGIN = Script("downloader.begin", _RUN_LIB + _SCRIPTS.joinpath("begin.lua").read_text())
FORGET = Script("downloader.forget", _RUN_LIB + _SCRIPTS.joinpath("forget.lua").read_text())
DELETED = "deleted"  # the state of a deleted run's tombstone
RUN_JOB = "downloader.download.download_for_run"  # the compact job a run's links become
_job_options: dict[str, dict] = {}  # run id -> what its downloads share (fixed when the run is made)
_job_options_lock = threading.Lock()


@dataclass
class Progress:
    run_id: str
    total: int
    done: int
    skipped: int
    failed: int
    bytes: int
    created: float = 0.0
    source: str = ""
    directory: str = ""
    state: str = "enqueued"
    expected: int = 0  # links the producer read (0: still reading)
    producing: bool = False  # a producer holds the lease

    @property
    def settled(self) -> int:
        return self.done + self.skipped + self.failed

    @property
    def canceled(self) -> bool:
        return self.state == "canceled"

    @property
    def interrupted(self) -> bool:
        """Its producer stopped before enqueueing every link: `fetch --resume` completes it."""
        return self.state == "enqueuing" and not self.producing

    @property
    def complete(self) -> bool:
        return self.canceled or (self.state == "enqueued" and self.settled >= self.total)

    @property
    def stuck(self) -> bool:
        """Nothing more will happen without someone resuming it."""
        return self.interrupted and self.settled >= self.total

    def describe_state(self) -> str:
        """One line on the run's lifecycle, or "" for a plain enqueued run."""
        if self.canceled:
            return f"canceled: {self.total - self.settled} download(s) will not run"
        if self.state != "enqueuing":
            return ""
        of = f" of {self.expected}" if self.expected else ""
        if self.interrupted:
            return (f"interrupted while enqueuing: {self.total}{of} link(s) enqueued; "
                    f"`downloader fetch --resume {self.run_id}` enqueues the rest")
        return f"still enqueuing: {self.total}{of} link(s) enqueued so far"


def job_id(run_id: str, url: str) -> str:
    """Derived from the URL: a link read twice is one job of the run."""
    return f"dl-{run_id}-{hashlib.sha1(url.encode()).hexdigest()[:16]}"


class Runs:
    """The runs of a deployment, on its shards (shards.py); a run's own
    keys are those of its shard (``keys_of``), ``keys`` the fleet's home."""

    def __init__(self, connection: redis.Redis, keys: Keys | None = None, shards: list[Shard] | None = None) -> None:
        self.connection = connection
        self.shards = shards or layout(connection, 1, keys.prefix if keys else None)
        self.keys = home(self.shards)

    @classmethod
    def sharded(cls, connection: redis.Redis, count: int) -> "Runs":
        """The runs of a deployment of ``count`` shards (checked: see shards.deployed)."""
        return cls(connection, shards=deployed(connection, count))

    @classmethod
    def of_job(cls, job: Job) -> "Runs":
        """The runs of a job's shard, as its namespace names it; one per
        client and namespace, reused by every download a worker runs."""
        backend = job.backend
        key = (id(backend.connection), backend.keys.prefix)
        runs = _by_namespace.get(key)
        if runs is None or runs.connection is not backend.connection:
            runs = _by_namespace[key] = cls(backend.connection, shards=[of_jobs(backend)])
        return runs

    def shard(self, run_id: str) -> Shard:
        return pick(self.shards, run_id)

    def keys_of(self, run_id: str) -> Keys:
        return self.shard(run_id).keys

    def archive_keys(self) -> list[Keys]:
        """Where a download archive's items are: home first (an import goes
        there), then each shard (its runs record their items there)."""
        found = {keys.prefix: keys for keys in [self.keys, *(shard.keys for shard in self.shards)]}
        return list(found.values())

    def queue(self, run_id: str, name: str | None = None) -> Queue:
        """The run's queue (``name``: its queue's name, when known), in the run's shard."""
        return self.shard(run_id).queue(name or self.queue_of(run_id))

    def job_options(self, run_id: str) -> dict:
        """What every download of the run shares (directory, limits, archive),
        as its producer recorded it: read once per process, since it never
        changes, so a run's job carries only its URL and what is its own."""
        options = _job_options.get(run_id)
        if options is None:
            with _job_options_lock:  # the downloads that start together ask once
                return _job_options.get(run_id) or self._read_job_options(run_id)
        return options

    def job_call(self, run_id: str, extras: dict) -> tuple[str, dict]:
        """(directory, download options) of a run's job with these extras."""
        options = {**self.job_options(run_id), **extras}
        return options.pop("dir"), options

    def _read_job_options(self, run_id: str) -> dict:
        raw = text(self.connection.hget(self.keys_of(run_id).run(run_id), "job"))
        if raw is None:
            raise PermanentDownloadError(f"run {run_id} is gone (deleted or expired) or was written by an older "
                                         f"downloader: its download options are missing; start a new run")
        if len(_job_options) >= 1024:
            _job_options.clear()
        options = _job_options[run_id] = json.loads(raw)
        return options

    def create(self, urls, source: str, settings) -> tuple[str, list[str]]:
        """A whole run in one call (a producer that reads, enqueues and seals):
        returns (run id, the unique URLs enqueued)."""
        from .producer import Producer  # the producer builds on this module
        unique = list(dict.fromkeys(u.strip() for u in urls if u.strip()))
        with Producer.new(self, source, {"kind": "api"}, settings, len(unique)) as producer:
            producer.add(unique)
            producer.seal(len(unique))
        return producer.run_id, unique

    # -- recording outcomes -----------------------------------------------------------------

    def mark(self, run_id: str, url: str, state: str, nbytes: int = 0, reason: str = "", job: Job | None = None,
             archive: tuple[str, str] = ("", "")) -> None:
        """With the running ``job``, the mark rides on the worker's round trip
        that records the job's success (mark.lua is idempotent). ``archive``:
        (archive name, item id) to record a done or skipped item in."""
        name, item = archive
        keys = self.keys_of(run_id)
        argv = (keys.run(run_id), url, state, nbytes, reason, keys.archive(name) if name else "", item)
        if job is not None:
            job.write_on_success(MARK, *argv)
        else:
            MARK(self.connection, json.dumps([argv]), keys=argv[:1])  # (a key routes the call on a cluster)

    def mark_many(self, run_id: str, marks: list[tuple[str, str, str]]) -> None:
        """(url, state, reason) triples, in one call."""
        run = self.keys_of(run_id).run(run_id)
        MARK(self.connection, json.dumps([(run, url, state, 0, reason) for url, state, reason in marks]), keys=(run,))

    def set_state(self, run_id: str, to: str, arg: str | float | int = "", token: str = "") -> str | None:
        """state.lua: the state the run had, None when there is no such run."""
        run = self.keys_of(run_id).run(run_id)
        return text(STATE(self.connection, run, to, arg, token, keys=(run,))) or None

    # -- reading ----------------------------------------------------------------------------

    def progress(self, run_id: str) -> Progress:
        """Six O(1) commands in one round trip, whatever the run's size."""
        keys = self.keys_of(run_id)
        pipe = self.connection.pipeline(transaction=False)
        pipe.hmget(keys.run(run_id), "id", "bytes", "created", "source", "directory", "state", "expected")
        pipe.hlen(keys.urls(run_id))
        pipe.exists(keys.producer(run_id))
        for state in STATES:
            pipe.scard(keys.state(run_id, state))
        (found, nbytes, created, source, directory, state, expected), total, producing, done, skipped, failed = \
            pipe.execute()
        if found is None:
            gone = "was deleted" if text(state) == DELETED else "does not exist (or expired)"
            raise RunNotFound(f"run {run_id!r} {gone}; `downloader runs` lists the runs there are")
        return Progress(run_id, total, done, skipped, failed, int(nbytes or 0), float(created or 0),
                        text(source) or "", text(directory) or "", text(state) or "enqueued", int(expected or 0),
                        bool(producing))

    def latest(self) -> str:
        newest = []
        for shard in self.shards:  # each shard's index lists its own runs
            for run_id, created in self.connection.zrevrange(shard.keys.runs, 0, 20, withscores=True):
                if self.connection.hexists(shard.keys.run(text(run_id)), "id"):
                    newest.append((created, text(run_id)))
                    break
        if not newest:
            raise RunNotFound("no runs yet; start one with `downloader fetch`")
        return max(newest)[1]

    def all(self, limit: int = 50) -> list[Progress]:
        """Newest first, from every shard; the index forgets runs that
        expired or were deleted."""
        rows = [row for shard in self.shards for row in self._all_of(shard, limit)]
        return sorted(rows, key=lambda p: p.created, reverse=True)[:limit]

    def _all_of(self, shard: Shard, limit: int) -> list[Progress]:
        rows, start = [], 0
        while len(rows) < limit:
            ids = [text(r) for r in self.connection.zrevrange(shard.keys.runs, start, start + limit - 1)]
            if not ids:
                break
            start += len(ids)
            for run_id in ids:
                try:
                    rows.append(self.progress(run_id))
                except RunNotFound:
                    self.connection.zrem(shard.keys.runs, run_id)
                    start -= 1
        return rows[:limit]

    def info(self, run_id: str, *fields: str) -> list[str | None]:
        return [text(v) for v in self.connection.hmget(self.keys_of(run_id).run(run_id), fields)]

    def failures(self, run_id: str) -> dict[str, str]:
        return text_dict(self.connection.hgetall(self.keys_of(run_id).reasons(run_id)))

    def queue_of(self, run_id: str) -> str:
        return self.info(run_id, "queue")[0] or "downloads"

    def job_ids(self, run_id: str, count: int = 1000):
        """(url, job id) chunks of the whole run, read with HSCAN (no big reply)."""
        for chunk in self.entries(run_id, count):
            yield [(url, job_id(run_id, url)) for url, _ in chunk]

    def entries(self, run_id: str, count: int = 1000):
        """(url, job extras) chunks of the whole run, as its URL map keeps them."""
        cursor = 0
        while True:
            cursor, chunk = self.connection.hscan(self.keys_of(run_id).urls(run_id), cursor, count=count)
            if chunk:
                yield [(text(u), json.loads(text(v) or "{}")) for u, v in chunk.items()]
            if not cursor:
                return

    def extras_of(self, run_id: str, urls: list[str]) -> list[dict | None]:
        """Each URL's job extras, None for a URL not in the run."""
        key = self.keys_of(run_id).urls(run_id)
        values = [v for start in range(0, len(urls), 1000)  # no command of unbounded size
                  for v in self.connection.hmget(key, urls[start:start + 1000])]
        return [None if v is None else json.loads(text(v) or "{}") for v in values]


def on_download_failed(job: Job, connection: redis.Redis, exc_type, exc, traceback) -> None:
    """jobqueue calls this in the worker once a download has failed for good:
    the run learns why, and the partial file goes."""
    try:
        directory, link, run_id, options = call_of(job, connection)
    except PermanentDownloadError:
        return  # the run is gone: nobody to tell
    try:
        folder, name = place(disk.directory_for(directory), link, options.get("name"))
        discard_parts(folder, name, job.id, job.attempt)
    except PermanentDownloadError:
        pass  # unreachable, or a name refused: nothing of it can be here
    if run_id:
        Runs.of_job(job).mark(run_id, link, "failed", reason=reason_of(str(exc)))


def call_of(job: Job, connection: redis.Redis) -> tuple[str, str, str | None, dict]:
    """(directory, link, run id, options) of a download job of either shape:
    a run's compact job (link, run id; the rest is the run's) or a whole call
    of ``download_link(directory, link, run=..., ...)``."""
    if job.func_name == RUN_JOB:
        link, run_id = job.args[0], job.args[1]
        directory, options = Runs.of_job(job).job_call(run_id, job.kwargs)
        return directory, link, run_id, options
    options = dict(job.kwargs)
    return job.args[0], job.args[1], options.pop("run", None), options


def reason_of(text: str) -> str:
    """'downloader.exceptions.PermanentDownloadError: HTTP 404' -> 'HTTP 404',
    storable (a name with undecodable bytes is escaped, never a failed mark)."""
    text = storable(text)
    name, sep, message = text.partition(": ")
    if sep and name.replace(".", "").replace("_", "").isalnum() and name.split(".")[-1][:1].isupper():
        return message
    return text
