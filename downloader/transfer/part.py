"""An attempt's own part file, and the only way bytes reach the download directory.

Each attempt of a job writes ``<name>.<job>.<attempt>.part`` and no other
file: two attempts of one job (a worker paused or cut off, and the attempt
that replaced it) never write one file. A new attempt may reuse an earlier
attempt's bytes, but only by copying them into its own file (the earlier one
may still be writing: it is never written to, and never renamed) and only
through a validated resume: the earlier attempt's ``.meta`` names the entity
(strong ETag or Last-Modified, and its total size) its bytes belong to, the
request carries ``If-Range``, and only a 206 whose Content-Range starts where
the copy ends and names the same total is appended. Anything else starts
from zero.

Why the copy is safe: an attempt writes its ``.meta`` once, when the first
body byte arrives and after any truncation, and never changes it or
truncates afterwards; so bytes read from a part whose meta was read first
always belong to that meta's entity.

Every file is opened relative to the directory's descriptor with
``O_NOFOLLOW`` (and ``O_EXCL`` when created): a symlink planted in the
directory is never followed, so the directory is the only place bytes go.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from dataclasses import dataclass
from typing import Iterator

from ..exceptions import PermanentDownloadError, TransientDownloadError
from .errors import disk_error

IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
_CREATE = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
EARLIER = 3  # how many earlier attempts a new one looks at for bytes to reuse
RESUME_MIN = 1 << 20  # smaller files are fetched again whole: a meta per file would cost more than it saves


class Folder:
    """The download directory, held by a descriptor (made if missing, with ``make``)."""

    def __init__(self, path: str, make: bool = True) -> None:
        self.path = path
        try:
            if make:
                os.makedirs(path, exist_ok=True)
            self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise disk_error(exc, path) from None

    def child(self, name: str) -> "Folder":
        """The subdirectory ``name`` (one component), made if missing; a
        symlink or a file there is refused, never followed."""
        path = os.path.join(self.path, name)
        try:
            os.mkdir(name, 0o755, dir_fd=self.fd)
        except FileExistsError:
            pass
        except OSError as exc:
            raise disk_error(exc, self.path) from None
        child = Folder.__new__(Folder)
        child.path = path
        try:
            child.fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                raise PermanentDownloadError(f"{path} is a symlink or a file, not a folder: move it away") from None
            raise disk_error(exc, self.path) from None
        return child

    def gone(self) -> bool:
        """The directory was removed under us (files can no longer be made in it)."""
        try:
            return os.fstat(self.fd).st_nlink == 0
        except OSError:
            return True

    def close(self) -> None:
        os.close(self.fd)

    def complete(self, name: str) -> int | None:
        """The size of a regular file under ``name``; a symlink, a directory or a
        device there is never an "already complete" download."""
        try:
            st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def exists(self, name: str) -> bool:
        try:
            os.stat(name, dir_fd=self.fd, follow_symlinks=False)
            return True
        except FileNotFoundError:
            return False

    def unlink(self, name: str) -> None:
        """Best effort: gone already, or a disk that refuses even this (read-only)."""
        try:
            os.unlink(name, dir_fd=self.fd)
        except OSError:
            pass


@dataclass(frozen=True)
class Entity:
    """What a part's bytes are a prefix of: the server's validator and total size."""
    validator: str
    total: int


class Part:
    def __init__(self, folder: Folder, name: str, owner: str, attempt: int, check_image: bool, max_size: int,
                 video: bool = False) -> None:
        self.folder, self.name, self.check_image, self.max_size = folder, name, check_image, max_size
        self.video = video  # an MP4 is what is expected, not an image
        self.base = f"{name}.{owner}"
        self.attempt = attempt
        self.file = f"{self.base}.{attempt}.part"
        self.meta = f"{self.base}.{attempt}.meta"
        self.fd = -1
        self.offset = 0          # bytes taken over from an earlier attempt
        self.written = 0         # the file's size as we wrote it
        self.entity: Entity | None = None  # set when a validator allows the next attempt to resume
        self.expected: int | None = None   # the whole file's size, when the server said
        self._reused: Entity | None = None

    # -- before the request --------------------------------------------------------------

    def open(self) -> dict[str, str]:
        """Create this attempt's file; copy an earlier attempt's bytes into it
        when there are any to reuse. Returns the headers of a validated resume."""
        try:
            self.fd = os.open(self.file, _CREATE, 0o644, dir_fd=self.folder.fd)
        except FileExistsError:  # a file of ours from a crash of this very attempt: never trusted
            self.folder.unlink(self.file)
            self.fd = os.open(self.file, _CREATE, 0o644, dir_fd=self.folder.fd)
        except OSError as exc:
            raise disk_error(exc, self.folder.path) from None
        for earlier in self._earlier():
            found = self._take_over(earlier)
            if found:
                self._reused, self.offset = found
                self.written = self.offset
                return {"Range": f"bytes={self.offset}-", "If-Range": found[0].validator}
        return {}

    def _earlier(self) -> Iterator[int]:
        return iter(range(self.attempt - 1, max(0, self.attempt - 1 - EARLIER), -1))

    def _take_over(self, attempt: int) -> tuple[Entity, int] | None:
        entity = _read_meta(self.folder, f"{self.base}.{attempt}.meta")  # first the meta, then the bytes
        if entity is None:
            return None
        try:
            src = os.open(f"{self.base}.{attempt}.part", _READ, dir_fd=self.folder.fd)
        except OSError:
            return None
        try:
            size = min(os.fstat(src).st_size, entity.total)
            copied = 0
            while copied < size:
                n = os.copy_file_range(src, self.fd, size - copied, copied, copied)
                if n == 0:
                    break
                copied += n
            os.lseek(self.fd, copied, os.SEEK_SET)  # the body is appended after the copy
        except OSError as exc:
            raise disk_error(exc, self.folder.path) from None
        finally:
            os.close(src)
        return (entity, copied) if 0 < copied < entity.total else None

    # -- when the response's body starts -------------------------------------------------

    def begin(self, status: int, headers: dict[str, str]) -> None:
        """Take the response: a validated 206 appends, a 200 starts from zero;
        the meta is written now, once."""
        if status == 206:
            start, total = _content_range(headers.get("content-range", ""))
            if self._reused is None or start != self.offset or total != self._reused.total:
                raise RestartFromZero(f"the server answered a range we did not ask for "
                                      f"({headers.get('content-range', 'no Content-Range')})")
            self.entity = self._reused
            self.expected = total
        else:
            length = headers.get("content-length", "")
            total = int(length) if length.isdigit() else None
            if self.offset:
                self._truncate()
            validator = _validator(headers)
            resumable = validator and total is not None and total >= RESUME_MIN
            self.entity = Entity(validator, total) if resumable else None
            self.expected = total
        if self.expected is not None and self.expected > self.max_size:
            raise PermanentDownloadError(f"too large: {self.expected} bytes > max size {self.max_size}")
        if self.entity is not None:
            _write_meta(self.folder, self.meta, self.entity)

    def _truncate(self) -> None:
        try:
            os.ftruncate(self.fd, 0)
            os.lseek(self.fd, 0, os.SEEK_SET)
        except OSError as exc:
            raise disk_error(exc, self.folder.path) from None
        self.offset = self.written = 0

    def restart(self) -> None:
        """Forget the reused bytes: the next request asks for the whole entity."""
        self._truncate()
        self._reused = self.entity = self.expected = None

    def write(self, data: bytes) -> None:
        """One chunk of the body (16 KiB at most: kept lean)."""
        written = self.written + len(data)
        if written > self.max_size:
            raise PermanentDownloadError(f"too large: more than max size {self.max_size} bytes")
        if not self.written and self.check_image and not looks_like_media(data[:16], self.video):
            raise PermanentDownloadError("not an image (content does not start like JPEG, PNG, GIF, WebP...)")
        try:
            done = os.write(self.fd, data)
            while done < len(data):  # a short write: a disk about to be full, a signal
                done += os.write(self.fd, data[done:])
        except OSError as exc:
            raise disk_error(exc, self.folder.path) from None
        self.written = written

    # -- at the end ----------------------------------------------------------------------

    def verify(self) -> int:
        """The file's real size (fstat, not a count of writes); it must be the
        entity's whole size when known, and start like an image."""
        size = os.fstat(self.fd).st_size
        if self.expected is not None and size != self.expected:
            raise TransientDownloadError(f"truncated: got {size} of {self.expected} bytes")
        if self.check_image and not looks_like_media(os.pread(self.fd, 16, 0), self.video):
            raise PermanentDownloadError("not an image (empty response)" if size == 0 else
                                         "not an image (content does not start like JPEG, PNG, GIF, WebP...)")
        return size

    def commit(self) -> None:
        """Rename into place (atomic: the final name only ever holds a complete,
        verified file), then remove what earlier attempts left."""
        self._close()
        try:
            os.rename(self.file, self.name, src_dir_fd=self.folder.fd, dst_dir_fd=self.folder.fd)
        except IsADirectoryError:
            self.discard()
            raise PermanentDownloadError(f"{self.folder.path}/{self.name} is a directory; move it away") from None
        except OSError as exc:
            raise disk_error(exc, self.folder.path) from None
        if self.entity is not None:  # (only then did this attempt write a meta)
            self.folder.unlink(self.meta)
        for earlier in self._earlier():
            self.folder.unlink(f"{self.base}.{earlier}.part")
            self.folder.unlink(f"{self.base}.{earlier}.meta")

    def keep(self) -> None:
        """A transient failure: the bytes stay for the next attempt, if it can
        validate them (a part with no meta is of no use to anyone)."""
        self._close()
        if self.entity is None or self.written == 0:
            self.discard()

    def discard(self) -> None:
        self._close()
        self.folder.unlink(self.file)
        self.folder.unlink(self.meta)

    def _close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class RestartFromZero(Exception):
    """The resume did not validate: fetch the whole entity again."""


def looks_like_media(head: bytes, video: bool = False) -> bool:
    """An image (or, for a video, an MP4 / ISO media file)."""
    return looks_like_image(head) or (video and head[4:8] == b"ftyp")


def looks_like_image(head: bytes) -> bool:
    if head.startswith(IMAGE_MAGIC):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    return head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"heic", b"mif1")


def _validator(headers: dict[str, str]) -> str:
    """A validator If-Range may carry: a strong ETag, else Last-Modified."""
    etag = headers.get("etag", "")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("last-modified", "")


def _content_range(value: str) -> tuple[int | None, int | None]:
    """'bytes START-END/TOTAL' -> (START, TOTAL); None for what is missing."""
    unit, _, spec = value.strip().partition(" ")
    span, _, total = spec.partition("/")
    start = span.partition("-")[0]
    if unit.lower() != "bytes" or not start.isdigit() or not total.isdigit():
        return None, None
    return int(start), int(total)


def _read_meta(folder: Folder, name: str) -> Entity | None:
    try:
        fd = os.open(name, _READ, dir_fd=folder.fd)
    except OSError:
        return None
    try:
        data = json.loads(os.read(fd, 65536))
        return Entity(str(data["validator"]), int(data["total"]))
    except (ValueError, KeyError, TypeError, OSError):
        return None
    finally:
        os.close(fd)


def _write_meta(folder: Folder, name: str, entity: Entity) -> None:
    try:
        fd = os.open(name, _CREATE, 0o644, dir_fd=folder.fd)
    except FileExistsError:
        folder.unlink(name)
        fd = os.open(name, _CREATE, 0o644, dir_fd=folder.fd)
    except OSError as exc:
        raise disk_error(exc, folder.path) from None
    try:
        os.write(fd, json.dumps({"validator": entity.validator, "total": entity.total}).encode())
    except OSError as exc:
        raise disk_error(exc, folder.path) from None
    finally:
        os.close(fd)
