"""Link sources, one module per kind behind one interface (a new kind is a new file).

A source yields Items; `fetch` names their files (layout.py), drops those the
archive has (archive.py) and enqueues the rest. A source that fails raises
SourceError saying what to do.

    links_file.py    --links FILE / stdin: URLs, named as today
    imgur/           the Imgur API: one module per URL kind (image, album,
                     post, user, tag, subreddit, search, gallery sections)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Protocol


@dataclass(frozen=True)
class Item:
    """One file to download, with what a name template may use."""
    url: str
    id: str = ""             # the source's id for it (the archive's key); "" for a bare link
    title: str = ""
    album_id: str = ""
    album_title: str = ""
    index: int = 0           # 1-based position in its album; 0 when it is in none
    author: str = ""
    date: str = ""           # YYYY-MM-DD, UTC
    ext: str = ""            # without the dot
    kind: str = "links"      # the source kind that found it (album, user, tag, ..., links)
    video: bool = False

    def fields(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "album_id": self.album_id, "album_title": self.album_title,
                "index": self.index, "author": self.author, "date": self.date, "ext": self.ext, "kind": self.kind}


class Source(Protocol):
    description: str
    spec: dict  # how `fetch --resume` reads it again

    def items(self) -> Iterator[Item]: ...
