"""The gallery: random (the tutorial's source, with no URL) or a section
(hot, top, user) with its sort and window; ``pages`` pages (default 1)."""

from __future__ import annotations

from typing import Callable, Iterator

from .. import Item
from .api import ImgurApi

SECTIONS = ("hot", "top", "user")
SORTS = ("viral", "top", "time", "rising")
WINDOWS = ("day", "week", "month", "year", "all")


class Gallery:
    def __init__(self, api: ImgurApi, section: str | None = None, sort: str = "viral", window: str = "day",
                 pages: int = 1, on_page: Callable[[int, int], None] = lambda read, found: None) -> None:
        self.api, self.section, self.sort, self.window, self.pages = api, section, sort, window, pages
        self.on_page = on_page
        self.description = (f"Imgur {section} gallery ({sort}, {window}, {pages} page(s))" if section
                            else f"Imgur gallery at {api.api_url} ({pages} page(s))")

    def _path(self, page: int) -> str:
        if not self.section:
            return f"/3/gallery/random/random/{page}"
        return f"/3/gallery/{self.section}/{self.sort}/{self.window}/{page}"

    def items(self) -> Iterator[Item]:
        kind = f"gallery-{self.section}" if self.section else "random"
        for entry in self.api.pages(self._path, self.pages, self.on_page):
            yield from self.api.items(entry, kind)
