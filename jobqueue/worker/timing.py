"""The worker's clocks, configurable so tests can run them fast.

Defaults keep the promise that a dead worker's jobs return to their queue
within a minute: deadline = last heartbeat + heartbeat_ttl (30 s), noticed
by the next maintenance pass (every 15 s) of any live worker. The slack
between beats and the deadline is heartbeat_ttl - heartbeat_interval (20 s):
a worker (or its link to Redis) may stall that long without losing its jobs.
heartbeat_ttl must be at least 3 x heartbeat_interval; outage_grace at least
2 x heartbeat_interval (see scripts/reap.lua).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(f"JOBQUEUE_{name.upper()}")
    return float(value) if value else default


@dataclass(frozen=True)
class Timing:
    heartbeat_interval: float = 10.0     # how often a worker beats
    heartbeat_ttl: float = 30.0          # silence after which a worker counts as dead
    maintenance_interval: float = 15.0   # reaping dead workers' jobs, deleting expired results
    scheduler_interval: float = 1.0      # how often due scheduled jobs are looked for
    idle_block: float = 5.0              # longest single blocking wait on Redis
    max_abandoned: int = 3               # a job whose workers died more often goes to failed
    outage_grace: float = 0.0            # after Redis was silent, live workers get this long to beat
                                         # again before anything is reaped (0: 2 x heartbeat_interval)
    callback_timeout: float = 60.0       # longest an on_failure callback is waited for
    startup_wait: float = 30.0           # a worker that cannot reach Redis at start retries this long
    linger: float = 0.002                # after an outcome, how long the others still running may take to
                                         # join its round trip (fewer, fuller round trips; 0: none)

    @classmethod
    def from_env(cls, **overrides: float | None) -> "Timing":
        """``JOBQUEUE_HEARTBEAT_INTERVAL`` etc., then explicit overrides."""
        values = {}
        for f in fields(cls):
            value = overrides.get(f.name)
            values[f.name] = type(f.default)(value if value is not None else _env_float(f.name, f.default))
        return cls(**values)

    def __post_init__(self) -> None:
        if self.outage_grace <= 0:
            object.__setattr__(self, "outage_grace", 2 * self.heartbeat_interval)
