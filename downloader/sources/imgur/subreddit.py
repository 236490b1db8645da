"""A subreddit's gallery: ``imgur.com/r/SUB`` (GET /3/gallery/r/{sub}/{sort}/{window}/{page}),
every page unless ``pages`` is given."""

from __future__ import annotations

from typing import Callable, Iterator

from .. import Item
from .api import ImgurApi


class Subreddit:
    def __init__(self, api: ImgurApi, name: str, sort: str = "time", window: str = "week", pages: int | None = None,
                 on_page: Callable[[int, int], None] = lambda read, found: None) -> None:
        self.api, self.name, self.sort, self.window, self.pages, self.on_page = api, name, sort, window, pages, on_page
        self.description = f"Imgur subreddit gallery r/{name}"

    def items(self) -> Iterator[Item]:
        path = lambda page: f"/3/gallery/r/{self.name}/{self.sort}/{self.window}/{page}"
        for entry in self.api.pages(path, self.pages, self.on_page):
            yield from self.api.items(entry, "subreddit")
