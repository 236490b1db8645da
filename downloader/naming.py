"""File names from URLs: safe, bounded, deterministic and distinct.

The name is the URL's last path segment, cleaned (no separators, no control
characters, no leading dots, bounded length), plus a short hash of the whole
URL: two URLs with the same base name never share a file, and a URL always
maps to the same name on every machine, so a re-run finds its files.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import unicodedata
from urllib.parse import unquote, urlsplit

from .exceptions import PermanentDownloadError

MAX_STEM = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9.-]*[A-Za-z0-9-][A-Za-z0-9.-]*(:[0-9]{1,5})?([/?#][!-~]*)?")


def check_url(url: str) -> str:
    """An http(s) URL with a host, or a permanent error that says why."""
    if _PLAIN_URL.fullmatch(url):  # the common case, decided without urlsplit (millions of links)
        return url
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:
        raise PermanentDownloadError(f"malformed URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PermanentDownloadError(f"malformed URL {url!r}: expected http(s)://host/path")
    return url.strip()


def relative(name: str) -> list[str]:
    """A job's file name under the run's directory (``album/001-x.jpg``) as
    its components, each checked again here in the worker: whatever the job
    hash says (it may have been written by anyone), bytes stay inside."""
    parts = name.split("/")
    for part in parts:
        if part in ("", ".", "..") or part.startswith(".") or "\0" in part or len(part.encode()) > 200 \
                or any(unicodedata.category(c) == "Cc" for c in part):
            raise PermanentDownloadError(f"unsafe file name {name!r} in the job: refused (it would leave the "
                                         "run's directory or hide there)")
    return parts


def place(directory: str, link: str, name: str | None = None) -> tuple[str, str]:
    """(the folder path, the file name) a download goes to."""
    if not name:
        return directory, file_name(link)
    parts = relative(name)
    return os.path.join(directory, *parts[:-1]), parts[-1]


def file_name(url: str, default_ext: str = "") -> str:
    parts = urlsplit(url)
    segment = posixpath.basename(unquote(parts.path).replace("\\", "/")) or parts.hostname or "download"
    segment = unicodedata.normalize("NFKD", segment).encode("ascii", "ignore").decode()
    stem, ext = posixpath.splitext(segment)
    stem = _UNSAFE.sub("_", stem).strip("._-")[:MAX_STEM] or "download"
    ext = _UNSAFE.sub("", ext)[:10].lower() or default_ext
    digest = hashlib.sha1(url.encode()).hexdigest()[:8]
    return f"{stem}-{digest}{ext}"
