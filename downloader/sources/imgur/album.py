"""An album: ``imgur.com/a/ID`` (GET /3/album/{id}: its title and images;
/3/album/{id}/images when the answer does not list them all)."""

from __future__ import annotations

from typing import Iterator

from .. import Item
from .api import ImgurApi


class Album:
    def __init__(self, api: ImgurApi, album_id: str) -> None:
        self.api, self.album_id = api, album_id
        self.description = f"Imgur album {album_id}"

    def items(self) -> Iterator[Item]:
        album = self.api.get(f"/3/album/{self.album_id}")
        if isinstance(album, dict):
            album.setdefault("is_album", True)
        yield from self.api.items(album, "album")
