"""Imgur sources: which module reads which kind of URL, and one fetch's
sources, rebuilt from its ``spec`` by `fetch --resume`.

    i.imgur.com/ID.ext, imgur.com/ID     image.py
    imgur.com/a/ID                        album.py
    imgur.com/gallery/ID                  post.py
    imgur.com/user/NAME                   user.py (their posts)
    imgur.com/t/TAG                       tag.py
    imgur.com/r/SUB                       subreddit.py
    --search QUERY                        search.py
    --section hot|top|user, or nothing    gallery.py (nothing: the random gallery)
"""

from __future__ import annotations

import re
from typing import Callable, Iterator
from urllib.parse import quote, urlsplit

from ...exceptions import SourceError
from .. import Item
from .album import Album
from .api import ImgurApi
from .gallery import Gallery
from .image import Image
from .post import Post
from .search import Search
from .subreddit import Subreddit
from .tag import Tag
from .user import User

HOSTS = ("imgur.com", "i.imgur.com", "m.imgur.com", "www.imgur.com")
_ID = re.compile(r"^[A-Za-z0-9]{2,16}$")
NOT_IDS = {"upload", "signin", "register", "about", "apps", "tos", "privacy", "rules", "emoji", "search", "hot",
           "new", "top", "random", "gallery", "user", "account"}
KNOWN = ("an image (i.imgur.com/ID.jpg, imgur.com/ID), an album (imgur.com/a/ID), a post (imgur.com/gallery/ID), "
         "a user (imgur.com/user/NAME), a tag (imgur.com/t/TAG) or a subreddit (imgur.com/r/SUB)")


class ImgurFetch:
    """What one `fetch` reads from the Imgur API, in order."""

    def __init__(self, client_id: str, api_url: str, urls: list[str] | tuple[str, ...] = (), search: str | None = None,
                 section: str | None = None, sort: str | None = None, window: str | None = None,
                 pages: int | None = None, videos: bool = False, timeout: tuple[float, float] = (5, 30),
                 say: Callable[[str], None] | None = None, gallery_pages: int = 1) -> None:
        """``pages``: how many pages of each listing (None: all; the gallery
        reads ``gallery_pages`` then)."""
        self.api = ImgurApi(client_id, api_url, timeout, videos, say=say)
        self.on_page: Callable[[str, int], None] = lambda description, page: None
        self.found = 0
        self.sources = [self._source_for(url, pages) for url in urls]
        if search:
            self.sources.append(Search(self.api, search, sort or "time", window or "all", pages))
        if section or not self.sources:
            self.sources.append(Gallery(self.api, section, sort or "viral", window or "day", pages or gallery_pages))
        for source in self.sources:
            source.on_page = self._paged(source.description)
        self.description = ", ".join(source.description for source in self.sources)
        self.spec = {"kind": "imgur", "api_url": self.api.api_url, "urls": list(urls), "search": search,
                     "section": section, "sort": sort, "window": window, "pages": pages, "videos": videos,
                     "gallery_pages": gallery_pages}

    @property
    def cut_short(self) -> str | None:
        """Why reading stopped before the end (a used-up API quota), if it did."""
        return self.api.exhausted

    def items(self) -> Iterator[Item]:
        for source in self.sources:
            for item in source.items():
                self.found += 1
                yield item

    def _paged(self, description: str) -> Callable[[int, int], None]:
        return lambda page, entries: self.on_page(description, page)

    def _source_for(self, url: str, pages: int | None):
        parts = urlsplit(url if "://" in url else "https://" + url)
        host = (parts.hostname or "").lower()
        segments = [s for s in parts.path.split("/") if s]
        if host not in HOSTS or not segments:
            raise SourceError(f"{url!r} is not an Imgur URL that downloader reads; give {KNOWN}")
        head, rest = segments[0].lower(), segments[1:]
        bare = segments[0].split(".")[0]
        if host == "i.imgur.com" or (len(segments) == 1 and _ID.match(bare) and bare.lower() not in NOT_IDS):
            return Image(self.api, _safe(segments[0].split(".")[0]))
        if rest and head in ("a", "gallery"):
            post_id = _safe(rest[0].rsplit("-", 1)[-1])  # imgur.com/gallery/some-title-words-ID
            return Album(self.api, post_id) if head == "a" else Post(self.api, post_id)
        if rest and head == "user":
            return User(self.api, _safe(rest[0]), pages)
        if rest and head == "t":
            return Tag(self.api, _safe(rest[0]), pages=pages)
        if rest and head == "r":
            return Subreddit(self.api, _safe(rest[0]), pages=pages)
        raise SourceError(f"{url!r} is not a kind of Imgur URL that downloader reads; give {KNOWN}")


def _safe(name: str) -> str:
    """A name or id as one path segment of an API request, whatever it holds."""
    return quote(name, safe="")


def from_spec(spec: dict, client_id: str, timeout: tuple[float, float], say: Callable[[str], None] | None = None,
              api_url: str | None = None) -> ImgurFetch:
    """The same fetch again (for `fetch --resume`); the client id is not stored."""
    return ImgurFetch(client_id, api_url or spec["api_url"], spec.get("urls") or [], spec.get("search"),
                      spec.get("section"), spec.get("sort"), spec.get("window"), spec.get("pages"),
                      bool(spec.get("videos")), timeout, say, spec.get("gallery_pages") or 1)
