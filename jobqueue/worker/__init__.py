"""The worker, split by concern: ``worker`` (the lifecycle loop),
``lane`` (one namespace's round trip, heartbeat, waker and maintenance),
``execution`` (thread slots / fork work horses), ``recording`` (outcome ->
Redis record), ``maintenance`` (heartbeat, scheduler, reaper), ``shutdown``
(signals), ``timing`` (intervals), ``monitor`` (what `info` shows)."""

from .execution import get_current_job
from .monitor import WorkerInfo, list_workers
from .timing import Timing
from .worker import Worker

__all__ = ["Worker", "Timing", "WorkerInfo", "list_workers", "get_current_job"]
