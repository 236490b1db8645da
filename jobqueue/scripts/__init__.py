"""The Lua scripts that make every multi-step state change atomic.

Each ``<name>.lua`` beside this file is one state transition; its header says
which keys it touches and which invariant it keeps. ``lib.lua`` is prepended
to each. Scripts are called by SHA (EVALSHA) and loaded on NOSCRIPT (after a
Redis restart), which keeps every call to a single command: redis-py's own
pipelined scripts would add a SCRIPT EXISTS to each pipeline.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any, Sequence

import redis

from ..keys import Keys

NAMES = ("enqueue", "fetch", "finish", "heartbeat", "promote", "reap", "expire", "requeue", "cancel", "empty")


class Script:
    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


def _load_all() -> dict[str, Script]:
    folder = resources.files(__package__)
    lib = (folder / "lib.lua").read_text()
    return {n: Script(n, lib + "\n" + (folder / f"{n}.lua").read_text()) for n in NAMES}


SCRIPTS = _load_all()


class ScriptRunner:
    """Calls scripts for one connection and one key prefix."""

    def __init__(self, connection: redis.Redis, keys: Keys) -> None:
        self.connection = connection
        self.prefixes = keys.script_prefixes()

    def __call__(self, name: str, *args: Any) -> Any:
        script = SCRIPTS[name]
        argv = [*self.prefixes, *args]
        try:
            return self.connection.evalsha(script.sha, 0, *argv)
        except redis.exceptions.NoScriptError:
            self.connection.script_load(script.source)
            return self.connection.evalsha(script.sha, 0, *argv)

    def many(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Run several scripts in one round trip (not one transaction: each
        script is atomic by itself). Errors are raised after all ran."""
        pipe = self.connection.pipeline(transaction=False)
        for name, args in calls:
            pipe.evalsha(SCRIPTS[name].sha, 0, *self.prefixes, *args)
        results = pipe.execute(raise_on_error=False)
        for i, (result, (name, args)) in enumerate(zip(results, calls)):
            if isinstance(result, redis.exceptions.NoScriptError):
                results[i] = self(name, *args)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results
