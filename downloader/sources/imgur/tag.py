"""A tag: ``imgur.com/t/TAG`` (GET /3/gallery/t/{tag}/{sort}/{window}/{page},
whose data holds the posts under ``items``), every page unless ``pages`` is given."""

from __future__ import annotations

from typing import Any, Callable, Iterator

from .. import Item
from .api import ImgurApi


class Tag:
    def __init__(self, api: ImgurApi, tag: str, sort: str = "viral", window: str = "week", pages: int | None = None,
                 on_page: Callable[[int, int], None] = lambda read, found: None) -> None:
        self.api, self.tag, self.sort, self.window, self.pages, self.on_page = api, tag, sort, window, pages, on_page
        self.description = f"Imgur tag {tag}"

    def items(self) -> Iterator[Item]:
        path = lambda page: f"/3/gallery/t/{self.tag}/{self.sort}/{self.window}/{page}"
        for entry in self.api.pages(path, self.pages, self.on_page, unwrap=_posts):
            yield from self.api.items(entry, "tag")


def _posts(data: Any) -> Any:
    return data.get("items") if isinstance(data, dict) else data
