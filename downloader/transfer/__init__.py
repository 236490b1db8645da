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
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urljoin, urlsplit

from ..exceptions import PermanentDownloadError, TransientDownloadError
from ..retry_after import DEFAULT_CAP, retry_after
from .engine import engine
from .errors import curl_error
from .hop import Hop
from .part import EARLIER, Folder, Part, RestartFromZero

__all__ = ["Limits", "Folder", "Part", "Transfer", "TransferCancelled", "part_for", "discard_parts"]

MAX_REDIRECTS = 10
REDIRECTS = (301, 302, 303, 307, 308)
RETRYABLE = (408, 425, 429, 500, 502, 503, 504)  # and any other 5xx


@dataclass(frozen=True)
class Limits:
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_size: int = 50 * 2**20
    check_image: bool = True
    user_agent: str = "downloader/0.1"
    max_retry_after: float = DEFAULT_CAP
    video: bool = False  # an MP4 is expected: its Content-Type and first bytes pass the image check
    max_recv: int = 0    # bytes/s this transfer may take (the worker's --limit-rate, shared): 0, no cap


def part_for(folder: Folder, name: str, job_id: str | None, attempt: int, limits: Limits) -> Part:
    """This attempt's part. Outside a worker (no job) each call is an attempt
    of its own, numbered after those its predecessors left in the directory."""
    if job_id is None:
        return Part(folder, name, "solo", _next_solo_attempt(folder, name), limits.check_image, limits.max_size,
                    limits.video)
    return Part(folder, name, _owner(job_id), attempt, limits.check_image, limits.max_size, limits.video)


def _owner(job_id: str) -> str:
    """A job's mark in its part files' names (job ids may hold any character)."""
    return hashlib.sha1(job_id.encode()).hexdigest()[:10]


def _next_solo_attempt(folder: Folder, name: str) -> int:
    """The first number no earlier call left a file under (a few stats, no directory scan)."""
    attempt = 1
    while any(folder.exists(f"{name}.solo.{attempt}.{kind}") for kind in ("part", "meta")):
        attempt += 1
    return attempt


def discard_parts(directory: str, name: str, job_id: str, attempt: int) -> None:
    """A download failed for good: whatever its attempts left goes."""
    owner = _owner(job_id)
    try:
        folder = Folder(directory, make=False)
    except Exception:  # gone, or not ours to read: nothing to remove
        return
    try:
        for n in range(max(1, attempt - EARLIER), attempt + 1):
            folder.unlink(f"{name}.{owner}.{n}.part")
            folder.unlink(f"{name}.{owner}.{n}.meta")
    finally:
        folder.close()


class Transfer:
    """GET ``url`` into ``part`` on the loop, hop by hop. ``done(size, error)``
    is called once, on the loop's thread, when nothing writes the part any
    more: with the verified size (the caller commits), or with why not."""

    def __init__(self, url: str, part: Part, limits: Limits,
                 done: Callable[[int | None, BaseException | None], None],
                 before: Callable[[], None] | None = None) -> None:
        """``before``: called on the loop's thread right before the first
        request goes out; what it raises ends the transfer there."""
        self.url, self.part, self.limits, self.before = url, part, limits, before
        self.done: Callable[[int | None, BaseException | None], None] | None = done
        self.headers = {"User-Agent": limits.user_agent}
        self._hop: Hop | None = None
        self._hops = 0
        self._cancelled = False
        self._restarted = False

    def start(self) -> None:
        """Open the part (on the caller's thread: a disk error raises here) and go."""
        resume = self.part.open()
        self._go(self.url, {**self.headers, **resume})

    def cancel(self) -> None:
        """Stop soon; ``done`` still comes, once the loop has let go of the part."""
        self._cancelled = True
        hop = self._hop
        if hop is not None:
            engine().cancel(hop)

    def _go(self, url: str, headers: dict[str, str]) -> None:
        hop = self._hop = Hop(url, headers, self.limits.connect_timeout, self.limits.read_timeout,
                              on_body=lambda h: _take_body(h, self.part, self.limits), on_done=self._hop_done,
                              max_recv=self.limits.max_recv, before=None if self._hops else self.before)
        if self._cancelled:  # cancel() may have read the previous hop (a redirect): this one never starts
            hop.cancelled = True
        engine().start(hop)

    def _hop_done(self, hop: Hop) -> None:
        try:
            if self._cancelled:
                raise TransferCancelled(self.url)
            if hop.error is not None:
                raise hop.error
            if hop.code:
                raise curl_error(hop.code, hop.text, hop.url, (self.limits.connect_timeout, self.limits.read_timeout))
            if hop.status in REDIRECTS and hop.headers.get("location"):
                return self._redirect(hop)
            size = self.part.verify()
        except RestartFromZero:
            if self._restarted:
                return self._end(None, TransientDownloadError(f"{self.url}: the resume did not validate twice"))
            self._restarted = True
            try:
                self.part.restart()
            except BaseException as exc:
                return self._end(None, exc)
            return self._go(self.url, self.headers)
        except BaseException as exc:
            return self._end(None, exc)
        self._end(size, None)

    def _end(self, size: int | None, error: BaseException | None) -> None:
        """Tell the caller, once, and let go of the hop and the caller's callback:
        they refer back to this transfer (and through the caller to its future),
        so held on they would make every download a reference cycle, freed only by
        Python's cyclic garbage collector (620 ms of collections per worker over
        10,000 files, bench/README.md). A completed download is freed
        by reference counting alone; a failed one's exception (its traceback
        refers to the frames that hold it) is left to the collector."""
        done, self.done, self._hop, self.before = self.done, None, None, None
        done(size, error)

    def _redirect(self, hop: Hop) -> None:
        self._hops += 1
        target = urljoin(hop.url, hop.headers["location"])
        if urlsplit(target).scheme.lower() not in ("http", "https"):
            raise PermanentDownloadError(f"redirect to {target[:200]!r} refused: only http and https are "
                                         f"fetched (from {hop.url})")
        if self._hops > MAX_REDIRECTS:
            raise PermanentDownloadError(f"more than {MAX_REDIRECTS} redirects (last to {target[:200]})")
        self._go(target, hop.request_headers)


class TransferCancelled(Exception):
    """The transfer was stopped by its owner (a timeout, a superseded attempt)."""


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
    if limits.check_image and kind and not kind.startswith("image/") and kind != "application/octet-stream" \
            and not (limits.video and kind.startswith("video/")):
        raise PermanentDownloadError(f"not an image (Content-Type {kind})")
    part.begin(status, hop.headers)
    return part.write


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""
