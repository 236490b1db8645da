"""The transfer path: GET one URL into an attempt's own part file, on this
process's libcurl loop (engine.py), following redirects hop by hop
(hop.py), through the proxy the environment names (proxy.py), with a
validated resume (part.py) and errors mapped to the downloader's (errors.py).

Only http and https are fetched, for the first request and every redirect
(at most MAX_REDIRECTS). A stall is no byte for ``read_timeout`` seconds.
``max_size`` is enforced up front from Content-Length and while streaming.
"""

from __future__ import annotations

import hashlib
import http
import os
import re
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urljoin, urlsplit

from jobqueue.exceptions import AttemptSuperseded

from ..exceptions import PermanentDownloadError, TransientDownloadError
from ..retry_after import DEFAULT_CAP, retry_after
from .engine import engine
from .errors import curl_error
from .hop import Hop
from .part import EARLIER, Folder, Part, RestartFromZero

__all__ = ["Limits", "Folder", "Part", "fetch", "part_for", "discard_parts"]

MAX_REDIRECTS = 10
REDIRECTS = (301, 302, 303, 307, 308)
RETRYABLE = (408, 425, 429, 500, 502, 503, 504)  # and any other 5xx
WAIT_STEP = 0.5  # how often a waiting job looks whether its attempt was superseded


@dataclass(frozen=True)
class Limits:
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_size: int = 50 * 2**20
    check_image: bool = True
    user_agent: str = "downloader/0.1"
    max_retry_after: float = DEFAULT_CAP


def part_for(folder: Folder, name: str, job_id: str | None, attempt: int, limits: Limits) -> Part:
    """This attempt's part. Outside a worker (no job) each call is an attempt
    of its own, numbered after those its predecessors left in the directory."""
    if job_id is None:
        owner = "solo"
        attempt = 1 + max(_solo_attempts(folder, name), default=0)
    else:
        owner = hashlib.sha1(job_id.encode()).hexdigest()[:10]
    return Part(folder, name, owner, attempt, limits.check_image, limits.max_size)


def _solo_attempts(folder: Folder, name: str) -> list[int]:
    pattern = re.compile(re.escape(f"{name}.solo.") + r"(\d+)\.(?:part|meta)$")
    return [int(m.group(1)) for entry in os.scandir(folder.fd) if (m := pattern.match(entry.name))]


def discard_parts(directory: str, name: str, job_id: str, attempt: int) -> None:
    """A download failed for good: whatever its attempts left goes."""
    owner = hashlib.sha1(job_id.encode()).hexdigest()[:10]
    try:
        folder = Folder(directory)
    except Exception:
        return
    try:
        for n in range(max(1, attempt - EARLIER), attempt + 1):
            folder.unlink(f"{name}.{owner}.{n}.part")
            folder.unlink(f"{name}.{owner}.{n}.meta")
    finally:
        folder.close()


def fetch(url: str, part: Part, limits: Limits, superseded: Callable[[], bool] | None = None) -> int:
    """GET ``url`` into ``part``; returns the verified size (the caller commits)."""
    headers = {"User-Agent": limits.user_agent}
    resume = part.open()
    try:
        return _follow(url, {**headers, **resume}, part, limits, superseded)
    except RestartFromZero:
        part.restart()
        return _follow(url, headers, part, limits, superseded)


def _follow(url: str, headers: dict[str, str], part: Part, limits: Limits,
            superseded: Callable[[], bool] | None) -> int:
    for _ in range(MAX_REDIRECTS + 1):
        hop = Hop(url, headers, limits.connect_timeout, limits.read_timeout,
                  on_body=lambda h: _take_body(h, part, limits))
        _run(hop, superseded)
        if hop.error is not None:
            raise hop.error
        if hop.code:
            raise curl_error(hop.code, hop.text, url, (limits.connect_timeout, limits.read_timeout))
        if hop.status in REDIRECTS and hop.headers.get("location"):
            target = urljoin(url, hop.headers["location"])
            if urlsplit(target).scheme.lower() not in ("http", "https"):
                raise PermanentDownloadError(f"redirect to {target[:200]!r} refused: only http and https are "
                                             f"fetched (from {url})")
            url = target
            continue
        return part.verify()
    raise PermanentDownloadError(f"more than {MAX_REDIRECTS} redirects (last to {url})")


def _take_body(hop: Hop, part: Part, limits: Limits) -> Callable[[bytes], None] | None:
    """At the first byte of a body: where it goes, or why the transfer ends here."""
    status = hop.status
    if status in REDIRECTS and hop.headers.get("location"):
        return None
    if status == 416 and part.offset:
        raise RestartFromZero("the server refused the range of our partial file")
    if status not in (200, 206):
        reason = f"HTTP {status} {_phrase(status)}".strip()
        if status in RETRYABLE or status >= 500:
            raise TransientDownloadError(reason, retry_after=retry_after(hop.headers.get("retry-after"),
                                                                         limits.max_retry_after))
        raise PermanentDownloadError(reason)
    kind = hop.headers.get("content-type", "").split(";")[0].strip().lower()
    if limits.check_image and kind and not kind.startswith("image/") and kind != "application/octet-stream":
        raise PermanentDownloadError(f"not an image (Content-Type {kind})")
    part.begin(status, hop.headers)
    return part.write


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _run(hop: Hop, superseded: Callable[[], bool] | None) -> None:
    """Hand the hop to the loop and wait; a superseded attempt (or anything
    raised into this thread) cancels it first: the loop must be done with the
    part file before anyone closes or removes it."""
    loop = engine()
    loop.start(hop)
    try:
        while not hop.done.wait(WAIT_STEP):
            if superseded is not None and superseded():
                raise AttemptSuperseded(f"{hop.url}: this attempt is no longer current; its part file goes")
    except BaseException:
        if not hop.done.is_set():
            loop.cancel(hop)
            hop.done.wait()
        raise
