"""The Imgur API v3 gallery (the tutorial's source), or any compatible server.

GET {api_url}/3/gallery/random/random/{page} with `Authorization: Client-ID X`;
albums are expanded (their inline `images`, else /3/album/{id}/images); only
image links are kept. Rate limits: 429 waits for Retry-After (bounded) and the
X-RateLimit headers stop paging before the client's quota runs out.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator

import requests

from ..exceptions import SourceError
from ..retry_after import retry_after

IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
MAX_WAIT = 60.0


class ImgurGallery:
    def __init__(self, client_id: str, api_url: str = "https://api.imgur.com", pages: int = 1,
                 timeout: tuple[float, float] = (5.0, 30.0), max_wait: float = MAX_WAIT) -> None:
        if not client_id:
            raise SourceError("an Imgur client id is needed: --client-id X (register an app at imgur.com)")
        self.client_id, self.api_url, self.pages = client_id, api_url.rstrip("/"), pages
        self.timeout, self.max_wait = timeout, max_wait
        self.description = f"Imgur gallery at {self.api_url} ({pages} page(s))"
        self.spec = {"kind": "imgur", "api_url": self.api_url, "pages": pages}  # how `fetch --resume` reads it again
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Client-ID {client_id}"
        self._quota_exhausted = False  # X-RateLimit said no requests are left
        self.on_page: Callable[[int, int, int], None] | None = None  # (pages read, pages, links found so far)

    def links(self) -> Iterator[str]:
        found = 0
        for page in range(self.pages):
            data = self._get(f"/3/gallery/random/random/{page}")
            for item in data:
                for link in self._image_links(item):
                    found += 1
                    yield link
            if self.on_page is not None:
                self.on_page(page + 1, self.pages, found)
            if self._quota_exhausted:
                break

    def _image_links(self, item: Any) -> Iterator[str]:
        if not isinstance(item, dict):
            return
        if item.get("is_album"):
            images = item.get("images")
            if images is None and item.get("id"):
                images = self._get(f"/3/album/{item['id']}/images")
            for image in images or []:
                yield from self._image_links(image)
        elif item.get("type") in IMAGE_TYPES and isinstance(item.get("link"), str):
            yield item["link"]

    def _get(self, path: str) -> list:
        url = self.api_url + path
        waited = 0.0
        while True:
            try:
                response = self.session.get(url, timeout=self.timeout)
            except requests.RequestException as exc:
                raise SourceError(f"cannot reach {self.api_url} ({type(exc).__name__}); check --api-url "
                                  "and your network") from None
            if response.status_code == 429:
                wait = retry_after(response.headers.get("Retry-After"))
                wait = 5.0 if wait is None else wait
                if waited + wait > self.max_wait:
                    raise SourceError(f"rate limited by {self.api_url} (HTTP 429, Retry-After {wait:g} s); "
                                      "try again later")
                time.sleep(wait)
                waited += wait
                continue
            break
        if response.status_code in (401, 403):
            raise SourceError(f"{self.api_url} refused client id {self.client_id!r} (HTTP {response.status_code}); "
                              "check --client-id")
        if response.status_code != 200:
            raise SourceError(f"{url} answered HTTP {response.status_code}")
        self._quota_exhausted = _remaining(response) == 0
        try:
            payload = response.json()
        except ValueError:
            raise SourceError(f"{url} did not answer JSON (got {response.headers.get('Content-Type', '?')}); "
                              "is --api-url an Imgur-compatible API?") from None
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list):
            raise SourceError(f"{url} answered JSON without a 'data' list; is --api-url an Imgur-compatible API?")
        return data


def _remaining(response: requests.Response) -> int | None:
    """The smaller of the client and user quotas Imgur reports, if any."""
    values = []
    for header in ("X-RateLimit-ClientRemaining", "X-RateLimit-UserRemaining"):
        value = response.headers.get(header)
        if value and value.isdigit():
            values.append(int(value))
    return min(values) if values else None
