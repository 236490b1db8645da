"""Links from a file (or stdin with '-'): one URL per line; blank lines and
'#' comments skipped. The file must be UTF-8 (a byte-order mark is dropped);
a line that is not an http(s) URL is reported with its line number and not
enqueued (``rejected``), or, with ``strict``, stops the read."""

from __future__ import annotations

import codecs
import os
import sys
from typing import BinaryIO, Iterator

from ..exceptions import PermanentDownloadError, SourceError
from ..naming import check_url
from . import Item


SHOWN = 10  # rejected lines kept to show; the rest are counted


class LinksFile:
    def __init__(self, path: str, strict: bool = False) -> None:
        self.path, self.strict = path, strict
        self.description = "stdin" if path == "-" else f"links file {path}"
        # how `fetch --resume` reads it again
        self.spec = {"kind": "stdin"} if path == "-" else {"kind": "links", "path": os.path.abspath(path)}
        self.rejected: list[tuple[int, str, str]] = []  # (line number, line, why) of the first SHOWN
        self.rejected_count = 0

    def items(self) -> Iterator[Item]:
        """A file is read twice: whole first, keeping nothing, so that an
        encoding error or a --strict refusal enqueues nothing; then as a
        stream. Stdin cannot be read twice: it is streamed at once."""
        if self.path != "-":
            if self.strict or not self._decodes():  # (without --strict a bad line only is not enqueued)
                for _ in self.links(check=self.strict):  # says where, and why
                    pass
            self.rejected, self.rejected_count = [], 0
        for url in self.links():
            yield Item(url)

    def links(self, check: bool = True) -> Iterator[str]:
        try:
            handle: BinaryIO = sys.stdin.buffer if self.path == "-" else open(self.path, "rb")
        except OSError as exc:
            raise SourceError(f"cannot read {self.path}: {exc.strerror}; nothing was enqueued") from None
        with handle:
            for number, raw in enumerate(handle, 1):
                line = self._decode(raw, number).strip()
                if not line or line.startswith("#") or not check:
                    continue
                try:
                    yield check_url(line)
                except PermanentDownloadError as exc:
                    why = str(exc).rpartition(": ")[2]
                    if self.strict:
                        raise SourceError(f"{self.description}, line {number}: {line[:200]!r} is not a URL to "
                                          f"download ({why}); fix or remove it (or drop --strict)") from None
                    self.rejected_count += 1
                    if len(self.rejected) < SHOWN:  # a huge file of junk must not fill the memory
                        self.rejected.append((number, line[:200], why))

    def _decodes(self) -> bool:
        """Whether the whole file is UTF-8, read in blocks and kept nowhere
        (fast; the line-by-line pass says where it is not)."""
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            with open(self.path, "rb") as handle:
                while block := handle.read(1 << 20):
                    decoder.decode(block)
            decoder.decode(b"", final=True)
        except (OSError, UnicodeDecodeError):
            return False
        return True

    def _decode(self, raw: bytes, number: int) -> str:
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # a UTF-8 byte-order mark
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SourceError(f"{self.description} is not UTF-8 (line {number}, byte {exc.start + 1}: "
                              f"{raw[exc.start:exc.start + 1]!r}); save it as UTF-8 and try again") from None
