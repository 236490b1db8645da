"""A worker that drives its jobs' event loop on its own thread.

Jobs whose functions only start work on an event loop and return a Future
(the downloader's transfers, on one libcurl loop) need no thread of their
own, and need no loop thread either: ``Worker(loop=...)`` calls their
functions on the worker's thread and, whenever the worker would wait, turns
the loop instead. The whole pipeline, from taking a job to recording its
outcome, then runs on one thread. Measured on the downloader (bench/README.md),
that cut a quarter of a worker's CPU per file: with a loop thread and job
threads, every download passed the interpreter's lock between three threads.

The price: a function that blocks holds up the whole worker, its other
jobs' progress included. Only functions that return at once belong on such
a worker; anything else belongs on a worker of thread slots.
"""

from __future__ import annotations

import threading
import time
from queue import Empty, SimpleQueue
from typing import Protocol


class EventLoop(Protocol):
    def run(self, timeout: float) -> bool:
        """Do what is ready (waiting at most ``timeout`` seconds for something
        to be); returns whether work is still under way."""

    def wake(self) -> None:
        """Make a ``run`` in progress return soon (safe from any thread and in
        a signal handler)."""


class Events(SimpleQueue):
    """The worker's event queue, waking the loop the worker may be turning.
    An outcome reported on the worker's own thread (by a loop callback or a
    job that returned at once) is seen when ``run`` returns, with no wake-up;
    anything else (a signal, whose handler runs on this very thread while it
    waits in the loop; the heartbeat; a wake-up token) wakes it."""

    def __init__(self, loop: EventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.driver = threading.get_ident()

    def put(self, item, block: bool = True, timeout: float | None = None) -> None:
        super().put(item)
        if item[0] != "done" or threading.get_ident() != self.driver:
            self.loop.wake()


def next_event(events: SimpleQueue, loop: EventLoop | None, timeout: float) -> tuple | None:
    """The next event within ``timeout`` seconds, or None; with a loop,
    turning it meanwhile."""
    if loop is None:
        try:
            return events.get(timeout=timeout) if timeout > 0 else events.get_nowait()
        except Empty:
            return None
    end = time.monotonic() + timeout
    while True:
        try:
            return events.get_nowait()
        except Empty:
            pass
        left = end - time.monotonic()
        if left <= 0:
            return None
        loop.run(left)


def settle_loop(loop: EventLoop | None, within: float) -> None:
    """At shutdown: turn the loop until what was stopped has let go (a
    cancelled transfer removes its part file on the loop), for at most
    ``within`` seconds."""
    if loop is None:
        return
    end = time.monotonic() + within
    busy = loop.run(0)
    while busy and time.monotonic() < end:
        busy = loop.run(0.05)
