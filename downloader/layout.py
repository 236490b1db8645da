"""Where each file of a run goes: a name template, in gallery-dl's spirit.

    --name '{album_title|album_id}/{index:03}-{id}.{ext}'

Fields: id, title, album_id, album_title, index, author, date, ext, kind.
``{a|b}`` takes the first of them that is not empty; a format spec applies as
in Python (``{index:03}``). Each value is made a single safe path component
before it goes in (no ``/``, no control or bidi characters, no leading dot,
at most 120 bytes), so a title never makes a directory; the template's own
``/`` separate directories, empty ones are dropped, and a template that
could leave the run's directory (``..``, a leading ``/``) is refused. By
default an album's images go in a folder named after it, numbered in album
order, and other images are named by their id.

Names are decided by the producer, once, and travel in the jobs: every
machine writes every file under the same name. Two items of a run whose
names are equal or differ only in case (which a case-insensitive share
would merge) get the later one's id (or a hash of its URL) appended.
"""

from __future__ import annotations

import hashlib
import posixpath
import string
import unicodedata
from typing import Any

from jobqueue.backend import storable

from .exceptions import ConfigError
from .sources import Item

FIELDS = ("id", "title", "album_id", "album_title", "index", "author", "date", "ext", "kind")
ALBUM_NAME = "{album_title|album_id}/{index:03}-{id}.{ext}"
SINGLE_NAME = "{id}.{ext}"
MAX_COMPONENT = 120  # bytes: a part file's suffix and a sidecar's ".json" still fit in 255
_WINDOWS = str.maketrans({c: "_" for c in '<>:"|?*\\/'})


def component(value: Any) -> str:
    """``value`` as one file or directory name: never a path, never hidden."""
    text = unicodedata.normalize("NFC", str(value)).translate(_WINDOWS)
    text = "".join(c for c in text if unicodedata.category(c)[0] != "C")  # control, format (bidi), unassigned
    text = text.strip().lstrip(".").rstrip(". ")
    encoded = text.encode()[:MAX_COMPONENT]
    return encoded.decode("utf-8", "ignore").rstrip(". ")


class _Formatter(string.Formatter):
    def get_field(self, field_name: str, args: Any, kwargs: dict) -> tuple[Any, str]:
        for name in field_name.split("|"):
            value = kwargs[name.strip()]
            if value not in ("", 0, None):
                return value, field_name
        return "", field_name

    def format_field(self, value: Any, format_spec: str) -> str:
        return component(format(value, format_spec)) if value != "" else ""


class Layout:
    def __init__(self, template: str | None = None) -> None:
        """``template`` None: the default (album folders, else the id)."""
        self.template = template
        for text in ([template] if template else [ALBUM_NAME, SINGLE_NAME]):
            _check(text)
        self._taken: dict[str, str] = {}  # case-folded name -> the URL that has it

    def name(self, item: Item) -> str:
        """The item's path inside the run's directory (``a/b.jpg``), unique in the run."""
        template = self.template or (ALBUM_NAME if item.album_id else SINGLE_NAME)
        fields = {**item.fields(), "id": item.id or _digest(item.url)}
        rendered = _Formatter().format(template, **fields)
        parts = [part for part in (component(p) for p in rendered.split("/")) if part]
        if not parts or not parts[-1].strip("-_ "):
            parts = parts[:-1] + [component(f"{item.id or _digest(item.url)}.{item.ext or 'bin'}")]
        name = "/".join(parts)
        while self._taken.setdefault(name.casefold(), item.url) != item.url:
            stem, ext = posixpath.splitext(parts[-1])
            parts[-1] = component(f"{stem}-{item.id or _digest(item.url)}{ext}")
            if "/".join(parts) == name:
                parts[-1] = component(f"{stem}-{_digest(item.url)}{ext}")
            name = "/".join(parts)
        return name


def _check(template: str) -> None:
    if storable(template) != template:  # every worker reads it from Redis, as text
        raise ConfigError(f"--name {storable(template)}: the template is not UTF-8; write it in UTF-8, "
                          f"e.g. '{ALBUM_NAME}'")
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ConfigError(f"--name {template!r} is not a valid template ({exc}); e.g. '{ALBUM_NAME}'") from None
    for field in fields:
        for name in field.split("|"):
            if name.strip() not in FIELDS:
                raise ConfigError(f"--name {template!r}: unknown field {{{name.strip()}}}; known: {', '.join(FIELDS)}")
    sample = Item("https://i.example/x.jpg", id="x", title="t", album_id="a", album_title="t", index=1, author="u",
                  date="2026-01-01", ext="jpg", kind="album")
    try:
        _Formatter().format(template, **sample.fields())
    except (ValueError, TypeError, IndexError) as exc:
        raise ConfigError(f"--name {template!r} cannot be filled in ({exc}); e.g. '{ALBUM_NAME}'") from None
    shape = "".join(text + ("x" if field is not None else "") for text, field, _, _ in string.Formatter().parse(template))
    if template.startswith("/") or any(part in (".", "..") for part in shape.split("/")):
        raise ConfigError(f"--name {template!r} would leave the run's directory: no leading '/', no '.' or '..'")


def _digest(url: str) -> str:
    return hashlib.sha1(url.encode()).hexdigest()[:8]
