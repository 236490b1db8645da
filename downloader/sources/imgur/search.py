"""A gallery search: ``--search QUERY`` (GET /3/gallery/search/{sort}/{window}/{page}?q=QUERY),
every page unless ``pages`` is given."""

from __future__ import annotations

from typing import Callable, Iterator

from .. import Item
from .api import ImgurApi


class Search:
    def __init__(self, api: ImgurApi, query: str, sort: str = "time", window: str = "all", pages: int | None = None,
                 on_page: Callable[[int, int], None] = lambda read, found: None) -> None:
        self.api, self.query, self.sort, self.window, self.pages, self.on_page = api, query, sort, window, pages, on_page
        self.description = f"Imgur search {query!r}"

    def items(self) -> Iterator[Item]:
        path = lambda page: f"/3/gallery/search/{self.sort}/{self.window}/{page}"
        for entry in self.api.pages(path, self.pages, self.on_page, params={"q": self.query}):
            yield from self.api.items(entry, "search")
