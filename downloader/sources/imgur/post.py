"""A gallery post: ``imgur.com/gallery/ID`` (GET /3/gallery/{id}: an image or an album)."""

from __future__ import annotations

from typing import Iterator

from .. import Item
from .api import ImgurApi


class Post:
    def __init__(self, api: ImgurApi, post_id: str) -> None:
        self.api, self.post_id = api, post_id
        self.description = f"Imgur post {post_id}"

    def items(self) -> Iterator[Item]:
        yield from self.api.items(self.api.get(f"/3/gallery/{self.post_id}"), "post")
