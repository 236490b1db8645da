"""One libcurl event loop per process: a CurlMulti turned by one thread.

Every download of a worker process runs on this loop, in C, through the
multi interface's socket API (epoll through ``selectors``). In ``downloader
work`` the worker's own thread turns it (``driven``: jobqueue's
``Worker(loop=...)``), so taking a job, starting its transfer and recording
its outcome all happen on one thread; anywhere else the loop has a thread of
its own, and callers hand their transfers over. libcurl keeps the connections
(keep-alive, HTTP/2 multiplexing) in the multi handle, so they are shared by
every job of the process. A forked child (a work horse) gets a loop of its own.

A transfer is any object with:
    ``setup(curl)``            set the options of the request (on the loop's thread)
    ``deadline()``             monotonic time after which it has stalled, or None
    ``stalled()``              called once it has: note why (the loop removes it)
    ``finished(code, text)``   curl's result (0 = OK); called once, on the loop's
                               thread, when the loop has let go of the transfer
    ``cancelled``              set by ``cancel``; a transfer marked so is never started
"""

from __future__ import annotations

import logging
import os
import selectors
import threading
import time
from collections import deque
from typing import Any

import pycurl

log = logging.getLogger("downloader.transfer")

_ENGINE: "Engine | None" = None
_ENGINE_LOCK = threading.Lock()
_ABORTED = -1       # finished() code of a transfer cancelled or stalled by us, not by curl
STALL_CHECK = 0.05  # seconds between looks for stalled transfers


def engine() -> "Engine":
    """This process's loop (made on first use, with a thread of its own
    unless ``driven`` made it first; again in a forked child)."""
    global _ENGINE
    if _ENGINE is None:
        with _ENGINE_LOCK:
            if _ENGINE is None:
                _ENGINE = Engine()
    return _ENGINE


def driven() -> "Engine | None":
    """This process's loop, for the caller's thread to turn (``run``) instead
    of a thread of its own; None if one with its own thread runs already."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = Engine(threaded=False)
        return None if _ENGINE.threaded else _ENGINE


def follow_socket(selector: selectors.BaseSelector, what: int, fd: int) -> None:
    """curl's socket callback: watch ``fd`` for what curl waits on (POLL_IN,
    POLL_OUT), or no more (POLL_REMOVE)."""
    if what == pycurl.POLL_REMOVE:
        try:
            selector.unregister(fd)
        except (KeyError, ValueError):
            pass
        return
    events = (selectors.EVENT_READ if what & pycurl.POLL_IN else 0) | \
             (selectors.EVENT_WRITE if what & pycurl.POLL_OUT else 0)
    try:
        selector.modify(fd, events)
    except KeyError:
        selector.register(fd, events)


def curl_flags(mask: int) -> int:
    """What the selector saw on a socket, as curl's socket_action takes it."""
    return (pycurl.CSELECT_IN if mask & selectors.EVENT_READ else 0) | \
           (pycurl.CSELECT_OUT if mask & selectors.EVENT_WRITE else 0)


def _forget_in_child() -> None:
    global _ENGINE
    _ENGINE = None  # the loop's thread did not come along: a child makes its own


os.register_at_fork(after_in_child=_forget_in_child)


class Engine:
    def __init__(self, threaded: bool = True) -> None:
        self.multi = pycurl.CurlMulti()
        self.multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self.multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        self.selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.selector.register(self._wake_r, selectors.EVENT_READ)
        self._incoming: deque[tuple[str, Any]] = deque()
        self._active: dict[pycurl.Curl, Any] = {}
        self._spare: list[pycurl.Curl] = []
        self._timer: float | None = None  # monotonic time curl wants to be called back
        self._next_check = 0.0            # when to look for stalled transfers next
        self.threaded = threaded
        self._driver: int | None = None   # the thread that turns the loop
        if threaded:
            threading.Thread(target=self._loop, name="curl-loop", daemon=True).start()

    # -- from job threads ----------------------------------------------------------------

    def start(self, transfer: Any) -> None:
        self._post("start", transfer)

    def cancel(self, transfer: Any) -> None:
        """Stop a transfer: its ``finished`` comes with code -1 (unless it was
        over already). Marked first, so a cancel that overtakes its own start
        (posted from another thread) still stops it."""
        transfer.cancelled = True
        self._post("cancel", transfer)

    def _post(self, what: str, transfer: Any) -> None:
        self._incoming.append((what, transfer))
        if threading.get_ident() != self._driver:  # the loop's own thread takes it at its next turn
            self.wake()

    def wake(self) -> None:
        """Make the loop's wait end now (from any thread, or a signal handler)."""
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already

    # -- the loop ------------------------------------------------------------------------

    def run(self, timeout: float) -> bool:
        """One turn on the caller's thread, waiting at most ``timeout`` seconds
        for something to do (a driven loop); returns whether transfers are
        under way."""
        self._driver = threading.get_ident()
        self._turn_safely(timeout)
        return bool(self._active or self._incoming)

    def _loop(self) -> None:
        self._driver = threading.get_ident()
        while True:
            self._turn_safely(None)

    def _turn_safely(self, cap: float | None) -> None:
        try:
            self._turn(cap)
        except Exception:  # keep every other transfer going; this one's waiter sees it stall
            log.exception("the download loop met an error; going on")
            time.sleep(0.01)

    def _turn(self, cap: float | None) -> None:
        timeout = 0.0 if self._incoming else self._next_timeout()  # a transfer posted from this thread waits for none
        if cap is not None:
            timeout = cap if timeout is None else min(timeout, cap)
        for key, mask in self.selector.select(timeout):
            if key.fd == self._wake_r:
                self._drain_wakeups()
                continue
            self._act(key.fd, curl_flags(mask))
        if self._timer is not None and time.monotonic() >= self._timer:
            self._timer = None
            self._act(pycurl.SOCKET_TIMEOUT, 0)
        self._take_incoming()
        self._reap_stalled()
        self._collect()

    def _next_timeout(self) -> float | None:
        wake_at = [t for t in (self._timer, self._next_check if self._active else None) if t is not None]
        return max(0.0, min(wake_at) - time.monotonic()) if wake_at else None

    def _act(self, fd: int, flags: int) -> None:
        while True:
            code, _ = self.multi.socket_action(fd, flags)
            if code != pycurl.E_CALL_MULTI_PERFORM:
                return

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _take_incoming(self) -> None:
        while self._incoming:
            what, transfer = self._incoming.popleft()
            if what == "start":
                if getattr(transfer, "cancelled", False):
                    transfer.finished(_ABORTED, "cancelled")
                    continue
                curl = self._spare.pop() if self._spare else pycurl.Curl()
                try:
                    transfer.setup(curl)
                except BaseException as exc:  # a bad option: the transfer fails, the loop goes on
                    transfer.error = exc
                    self._release(curl, transfer, _ABORTED, f"{type(exc).__name__}: {exc}", attached=False)
                    continue
                self._active[curl] = transfer
                self.multi.add_handle(curl)
            else:
                for curl, running in list(self._active.items()):
                    if running is transfer:
                        self._release(curl, transfer, _ABORTED, "cancelled")
                        break
                # else: over already, and told so

    def _reap_stalled(self) -> None:
        """Every STALL_CHECK seconds, not every turn: a turn is per socket event."""
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + STALL_CHECK
        for curl, transfer in list(self._active.items()):
            deadline = transfer.deadline()
            if deadline is not None and now >= deadline:
                transfer.stalled()
                self._release(curl, transfer, _ABORTED, "stalled")

    def _collect(self) -> None:
        while True:
            queued, ok, failed = self.multi.info_read()
            for curl in ok:
                self._release(curl, self._active[curl], 0, "")
            for curl, code, text in failed:
                self._release(curl, self._active[curl], code, text)
            if not queued:
                return

    def _release(self, curl: pycurl.Curl, transfer: Any, code: int, text: str, attached: bool = True) -> None:
        if attached:
            del self._active[curl]
            self.multi.remove_handle(curl)
        try:
            transfer.finished(code, text)
        except BaseException as exc:  # a bug in a transfer must not stop every other one
            transfer.error = exc
        finally:
            curl.reset()  # options go; the connections stay in the multi handle
            if len(self._spare) < 256:
                self._spare.append(curl)
            else:
                curl.close()

    # -- curl's callbacks ----------------------------------------------------------------

    def _on_socket(self, what: int, fd: int, multi: Any, data: Any) -> None:
        follow_socket(self.selector, what, fd)

    def _on_timer(self, timeout_ms: int) -> None:
        self._timer = None if timeout_ms < 0 else time.monotonic() + timeout_ms / 1000
