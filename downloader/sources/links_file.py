"""Links from a file (or stdin with '-'): one URL per line, blank and '#' lines ignored."""

from __future__ import annotations

import sys
from typing import Iterator

from ..exceptions import SourceError


class LinksFile:
    def __init__(self, path: str) -> None:
        self.path = path
        self.description = "stdin" if path == "-" else f"links file {path}"

    def links(self) -> Iterator[str]:
        try:
            handle = sys.stdin if self.path == "-" else open(self.path, encoding="utf-8")
        except OSError as exc:
            raise SourceError(f"cannot read {self.path}: {exc.strerror}; nothing was enqueued") from None
        with handle:
            for line in handle:
                line = line.strip()
                if line and not line.startswith("#"):
                    yield line
