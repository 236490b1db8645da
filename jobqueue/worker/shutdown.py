"""Signals: the first SIGINT/SIGTERM asks for a warm shutdown (finish the
running jobs, take no new ones), the second for a cold one (stop them and
put them back on their queue)."""

from __future__ import annotations

import logging
import signal
import threading
from queue import SimpleQueue

log = logging.getLogger("jobqueue.worker")


class Shutdown:
    def __init__(self, events: SimpleQueue) -> None:
        self.events = events   # SimpleQueue.put is safe inside a signal handler
        self.warm = False
        self.cold = False
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals reach only the main thread; embedders stop us with request()
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if self.warm:
            log.warning("Cold shut down (%s): stopping running jobs and returning them to their queue", name)
            self.cold = True
        else:
            log.info("Warm shut down requested (%s): finishing running jobs; send again to stop at once", name)
        self.request(cold=self.cold)

    def request(self, cold: bool = False) -> None:
        self.warm = True
        self.cold = self.cold or cold
        self.events.put(("shutdown", None))

    @property
    def stop_fetching(self) -> bool:
        return self.warm
