"""The Imgur API v3 (or any compatible server, such as `downloader demo-server`):
one client per fetch, which paces itself by the quota headers, and the one
place Imgur's JSON becomes Items.

Quotas: every answer may carry X-RateLimit-{Client,User}{Limit,Remaining}
and X-RateLimit-UserReset (epoch seconds). When less than a tenth of a quota
is left, requests are spread over the time until the reset, and the
producer says so; when none is left it waits for the reset if that is near
(``max_wait``), else it stops reading (``exhausted``): what was read is
enqueued and the run stays resumable. A 429 is waited out (Retry-After,
bounded by ``max_wait`` in all).
"""

from __future__ import annotations

import datetime
import posixpath
import time
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import requests

from ...exceptions import PermanentDownloadError, SourceError
from ...naming import check_url
from ...retry_after import retry_after
from .. import Item

IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
MAX_WAIT = 60.0   # seconds a fetch waits for the API in all (429s, a quota about to reset)
LOW_QUOTA = 0.1   # below this share of a quota left, requests are spread until the reset
MAX_PAGES = 1000  # a listing read "to the end" stops here whatever the server says


class ImgurApi:
    def __init__(self, client_id: str, api_url: str = "https://api.imgur.com", timeout: tuple[float, float] = (5, 30),
                 videos: bool = False, max_wait: float = MAX_WAIT, say: Callable[[str], None] | None = None) -> None:
        if not client_id:
            raise SourceError("an Imgur client id is needed: --client-id X (register an app at imgur.com)")
        self.client_id, self.api_url, self.timeout = client_id, api_url.rstrip("/"), timeout
        self.videos, self.max_wait = videos, max_wait
        self.say = say or (lambda line: None)
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Client-ID {client_id}"
        self.exhausted: str | None = None  # why reading stopped early (the quota), if it did
        self._next_at, self._waited, self._slow_said = 0.0, 0.0, False

    # -- requests ---------------------------------------------------------------------

    def get(self, path: str, params: dict | None = None) -> Any:
        """The ``data`` of a JSON answer, or SourceError saying what to do."""
        url = self.api_url + path
        while True:
            self._pace()
            try:
                response = self.session.get(url, params=params, timeout=self.timeout)
            except requests.RequestException as exc:
                raise SourceError(f"cannot reach {self.api_url} ({type(exc).__name__}); check --api-url "
                                  "and your network") from None
            if response.status_code != 429:
                break
            wait = retry_after(response.headers.get("Retry-After"))
            wait = 5.0 if wait is None else wait
            if self._waited + wait > self.max_wait:
                raise SourceError(f"rate limited by {self.api_url} (HTTP 429, Retry-After {wait:g} s); "
                                  "try again later")
            self._waited += wait
            time.sleep(wait)
        if response.status_code in (401, 403):
            raise SourceError(f"{self.api_url} refused client id {self.client_id!r} (HTTP {response.status_code}); "
                              "check --client-id")
        if response.status_code == 404:
            raise SourceError(f"{url} does not exist (HTTP 404): check the URL, the name or the id")
        if response.status_code != 200:
            raise SourceError(f"{url} answered HTTP {response.status_code}")
        self._read_quota(response.headers)
        try:
            payload = response.json()
        except ValueError:
            raise SourceError(f"{url} did not answer JSON (got {response.headers.get('Content-Type', '?')}); "
                              "is --api-url an Imgur-compatible API?") from None
        if not isinstance(payload, dict) or "data" not in payload:
            raise SourceError(f"{url} answered JSON without 'data'; is --api-url an Imgur-compatible API?")
        return payload["data"]

    def _pace(self) -> None:
        pause = self._next_at - time.time()
        if pause > 0:
            time.sleep(pause)

    def _read_quota(self, headers: Any) -> None:
        quotas = [(_int(headers.get(f"X-RateLimit-{who}Remaining")), _int(headers.get(f"X-RateLimit-{who}Limit")))
                  for who in ("Client", "User")]
        quotas = [(left, limit) for left, limit in quotas if left is not None]
        if not quotas:
            return
        left, limit = min(quotas)
        reset = _int(headers.get("X-RateLimit-UserReset"))
        until = max(0.0, reset - time.time()) if reset else 3600.0
        when = time.strftime("%H:%M:%S", time.localtime(time.time() + until))
        if left <= 0:
            if until > self.max_wait - self._waited:
                self.exhausted = f"the Imgur API quota is used up until {when}"
                return
            self.say(f"The Imgur API quota is used up; waiting {until:.0f} s for it to reset at {when}.")
            self._waited += until
            self._next_at = time.time() + until
        elif limit and left < limit * LOW_QUOTA:
            gap = min(until / left, self.max_wait)
            self._next_at = time.time() + gap
            if not self._slow_said:
                self._slow_said = True
                self.say(f"The Imgur API quota is low ({left} of {limit} requests left until {when}): "
                         f"slowing down to one request every {gap:.1f} s so as not to be refused.")

    def pages(self, path: Callable[[int], str], pages: int | None, on_page: Callable[[int, int], None],
              params: dict | None = None, unwrap: Callable[[Any], Any] = lambda data: data) -> Iterator[Any]:
        """Entries of a paged listing: ``pages`` pages, or (None) until an empty one."""
        for page in range(pages or MAX_PAGES):
            if self.exhausted:
                return
            entries = unwrap(self.get(path(page), params))
            if not isinstance(entries, list):
                raise SourceError(f"{self.api_url}{path(page)} answered an unexpected shape (no list of posts)")
            yield from entries
            on_page(page + 1, len(entries))
            if not entries and pages is None:
                return

    # -- JSON -> Items ----------------------------------------------------------------

    def items(self, entry: Any, kind: str) -> Iterator[Item]:
        """An image, or every image of an album (asking for its images when the
        entry does not list them all); videos only with ``videos``."""
        if not isinstance(entry, dict):
            return
        if entry.get("is_album") or (isinstance(entry.get("images"), list) and "link" not in entry):
            album_id, title = str(entry.get("id") or ""), str(entry.get("title") or "")
            images = entry.get("images")
            if not isinstance(images, list) or len(images) < _int(entry.get("images_count"), 0):
                images = self.get(f"/3/album/{album_id}/images") if album_id else []
            for index, image in enumerate(images if isinstance(images, list) else [], 1):
                yield from self._media(image, kind, album_id, title, index, str(entry.get("account_url") or ""),
                                       entry.get("datetime"))
        else:
            yield from self._media(entry, kind)

    def _media(self, image: Any, kind: str, album_id: str = "", album_title: str = "", index: int = 0,
               author: str = "", when: Any = None) -> Iterator[Item]:
        if not isinstance(image, dict) or not isinstance(image.get("link"), str):
            return
        link, mime = image["link"], str(image.get("type") or "")
        video = mime.startswith("video/") or link.endswith(".gifv")
        if video:
            if not self.videos:
                return
            link = image.get("mp4") if isinstance(image.get("mp4"), str) else link.removesuffix(".gifv") + ".mp4"
        elif mime not in IMAGE_TYPES:
            return
        try:
            url = check_url(link)
        except PermanentDownloadError:
            return  # a link the API should not have given: nothing to download
        ext = posixpath.splitext(urlsplit(url).path)[1].lstrip(".").lower() or ("mp4" if video else "jpg")
        yield Item(url, id=str(image.get("id") or ""), title=str(image.get("title") or ""), album_id=album_id,
                   album_title=album_title, index=index, author=str(image.get("account_url") or author),
                   date=_date(image.get("datetime") or when), ext=ext, kind=kind, video=video)


def _int(value: Any, default: int | None = None) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _date(epoch: Any) -> str:
    try:
        return datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).strftime("%Y-%m-%d")
    except (TypeError, ValueError, OverflowError, OSError):
        return ""
