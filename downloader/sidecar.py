"""``--metadata``: a JSON file beside each downloaded file (``<file>.json``)
with where it came from and what it is: source URL, title, album, author,
date, size and SHA-256. Written after the file is in place, by hashing the
file itself (so it describes exactly what was saved), on a small thread pool
of its own (never on the transfer loop), and renamed into place whole."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from .transfer.errors import disk_error
from .transfer.part import Folder

_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def pool() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sidecar")
        return _pool


def write(folder: Folder, name: str, meta: dict, owner: str) -> dict:
    """Hash ``name`` and write ``name.json``; returns what was written."""
    sha, size = hashlib.sha256(), 0
    try:
        fd = os.open(name, _READ, dir_fd=folder.fd)
        try:
            while chunk := os.read(fd, 1 << 20):
                sha.update(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
        record = {**meta, "file": name, "size": size, "sha256": sha.hexdigest()}
        temp = f"{name}.json.{owner}.tmp"
        folder.unlink(temp)
        fd = os.open(temp, _CREATE, 0o644, dir_fd=folder.fd)
        try:
            os.write(fd, json.dumps(record, indent=2, ensure_ascii=False).encode() + b"\n")
        finally:
            os.close(fd)
        os.rename(temp, f"{name}.json", src_dir_fd=folder.fd, dst_dir_fd=folder.fd)
    except OSError as exc:
        raise disk_error(exc, folder.path) from None
    return record


def missing(folder: Folder, name: str) -> bool:
    return not folder.exists(f"{name}.json")
