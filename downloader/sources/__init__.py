"""Link sources, one module each behind one interface (a new source is a new file).

A source yields URLs; `fetch` enqueues them. A source that fails raises
SourceError with what to do, and says how many links it had produced.
"""

from __future__ import annotations

from typing import Iterator, Protocol


class Source(Protocol):
    description: str

    def links(self) -> Iterator[str]: ...
