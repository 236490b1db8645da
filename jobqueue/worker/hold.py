"""An application's say over when its worker takes jobs (``Worker(hold=...)``):
asked before every fetch; a reason (a string) means take no job now, for
instance because the disk the jobs write to refuses bytes. The worker keeps
its running jobs and its heartbeat meanwhile, and says once when it stops
and once when it starts again."""

from __future__ import annotations

import logging
from typing import Callable

log = logging.getLogger("jobqueue.worker")


class Hold:
    def __init__(self, ask: Callable[[], str | None] | None) -> None:
        self.ask, self.reason = ask, None

    def __call__(self) -> bool:
        """Whether to take no job now."""
        reason = self.ask() if self.ask is not None else None
        if reason != self.reason:
            log.warning("Taking no jobs: %s", reason) if reason else log.warning("Taking jobs again")
            self.reason = reason
        return reason is not None
