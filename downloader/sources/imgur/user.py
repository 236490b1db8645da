"""A user's posts: ``imgur.com/user/NAME`` (GET /3/account/{name}/submissions/{page}),
every page unless ``pages`` is given."""

from __future__ import annotations

from typing import Callable, Iterator

from .. import Item
from .api import ImgurApi


class User:
    def __init__(self, api: ImgurApi, name: str, pages: int | None = None,
                 on_page: Callable[[int, int], None] = lambda read, found: None) -> None:
        self.api, self.name, self.pages, self.on_page = api, name, pages, on_page
        self.description = f"Imgur user {name}'s posts"

    def items(self) -> Iterator[Item]:
        for entry in self.api.pages(lambda page: f"/3/account/{self.name}/submissions/{page}", self.pages,
                                    self.on_page):
            yield from self.api.items(entry, "user")
