"""One image: ``i.imgur.com/ID.ext`` or ``imgur.com/ID`` (GET /3/image/{id})."""

from __future__ import annotations

from typing import Iterator

from .. import Item
from .api import ImgurApi


class Image:
    def __init__(self, api: ImgurApi, image_id: str) -> None:
        self.api, self.image_id = api, image_id
        self.description = f"Imgur image {image_id}"

    def items(self) -> Iterator[Item]:
        yield from self.api.items(self.api.get(f"/3/image/{self.image_id}"), "image")
