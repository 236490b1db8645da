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

NAMES = ("enqueue", "fetch", "finish", "heartbeat", "promote", "reap", "expire", "requeue", "cancel", "delete",
         "empty")


class Script:
    """A Lua script called by SHA. Applications may make their own (see
    ``Job.write_on_success``); jobqueue's own are the files beside this one."""

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(self, connection: redis.Redis, *argv: Any, keys: Sequence[str] = ()) -> Any:
        """One EVALSHA; loads the script on NOSCRIPT. jobqueue's own calls name
        one key (the namespace's ``queues`` set), which routes them on Redis
        Cluster; the script derives every other key of the namespace from
        ARGV, all in the same hash slot (a hash-tagged prefix)."""
        try:
            return connection.evalsha(self.sha, len(keys), *keys, *argv)
        except redis.exceptions.NoScriptError:
            connection.script_load(self.source)
            return connection.evalsha(self.sha, len(keys), *keys, *argv)


_FOLDER = resources.files(__package__)
_LIB = (_FOLDER / "lib.lua").read_text()
SCRIPTS = {n: Script(n, _LIB + "\n" + (_FOLDER / f"{n}.lua").read_text()) for n in NAMES}


def _pair(first: str, second: str) -> Script:
    """Two transitions in one call, each atomic as before and together too:
    a worker's round trip records outcomes and takes jobs with one EVALSHA and
    one TIME. Each body runs as a function of its own argument range:
    ARGV[A] is the index of the first one's last argument."""
    body = "\n".join([
        f"local function {first}(A, N)", (_FOLDER / f"{first}.lua").read_text(), "end",
        f"local function {second}(A, N)", (_FOLDER / f"{second}.lua").read_text(), "end",
        "local split = tonumber(ARGV[A])",
        f"local done = {first}(A + 1, split)",
        f"return {{done, {second}(split + 1, N)}}",
    ])
    return Script(f"{first}+{second}", _LIB + "\n" + body)


SCRIPTS["finish+fetch"] = _pair("finish", "fetch")
_FENCE = (_FOLDER / "fence.lua").read_text()
_fenced: dict[str, Script] = {}


def fenced(script: Script) -> Script:
    """``script`` behind the attempt fence (fence.lua): what a worker runs for
    ``Job.write_on_success``; its ARGV = the key prefixes, then the entries."""
    wrapped = _fenced.get(script.sha)
    if wrapped is None:
        wrapped = _fenced[script.sha] = Script(f"{script.name} (fenced)", f"{_LIB}\n{_FENCE}\n{script.source}")
    return wrapped


class ScriptRunner:
    """Calls scripts for one connection and one key prefix."""

    def __init__(self, connection: redis.Redis, keys: Keys) -> None:
        self.connection = connection
        self.prefixes = keys.script_prefixes()
        self.route = (keys.queues,)  # the one key every call names (see Script.__call__)
        self._loaded: set[str] = set()  # SHAs this runner loaded before a transaction

    def __call__(self, name: str, *args: Any) -> Any:
        return SCRIPTS[name](self.connection, *self.prefixes, *args, keys=self.route)

    def many(self, calls: Sequence[tuple[str | Script, Sequence[Any]]], raise_on_error: bool = True,
             transaction: bool = False) -> list[Any]:
        """Run several scripts in one round trip (each script is atomic by
        itself; with ``transaction`` all of them together, in MULTI/EXEC). A
        call names one of jobqueue's scripts (its key prefixes are passed
        first) or is an application's ``Script`` with its whole ARGV. Errors
        are raised after all ran, or returned in place with ``raise_on_error=False``.

        Order holds unless Redis had forgotten a script (NOSCRIPT: a restart, a
        SCRIPT FLUSH): that call is loaded and run again after the others, so a
        caller must not read a later call's result as having seen its effect.
        Inside a transaction that call would then land outside it, a round trip
        after the rest: so a transaction's scripts are loaded first, once each
        (and again once Redis is found to have forgotten one), and only a
        restart or flush since then leaves that window open."""
        resolved = [(SCRIPTS[s], [*self.prefixes, *args]) if isinstance(s, str) else (s, list(args)) for s, args in calls]
        if transaction:
            for script, _ in resolved:
                if script.sha not in self._loaded:
                    self.connection.script_load(script.source)
                    self._loaded.add(script.sha)
        pipe = self.connection.pipeline(transaction=transaction)
        for script, argv in resolved:
            pipe.execute_command("EVALSHA", script.sha, 1, *self.route, *argv)  # (a cluster pipeline blocks .evalsha)
        results = pipe.execute(raise_on_error=False)
        for i, (result, (script, argv)) in enumerate(zip(results, resolved)):
            if isinstance(result, redis.exceptions.NoScriptError):
                self._loaded.discard(script.sha)
                try:
                    results[i] = script(self.connection, *argv, keys=self.route)
                except redis.exceptions.ResponseError as exc:
                    results[i] = exc
        if raise_on_error:
            for result in results:
                if isinstance(result, Exception):
                    raise result
        return results

    def atomically(self, calls: Sequence[tuple[str, Sequence[Any]]], commands: Sequence[Sequence[Any]]) -> list[Any]:
        """jobqueue's scripts, then plain ``commands``, in one MULTI/EXEC that
        applies all or nothing. The scripts go by source (EVAL), not by SHA:
        a NOSCRIPT inside a transaction could only be mended outside it."""
        pipe = self.connection.pipeline(transaction=True)
        for name, args in calls:
            pipe.execute_command("EVAL", SCRIPTS[name].source, 1, *self.route, *self.prefixes, *args)
        for command in commands:
            pipe.execute_command(*command)
        return pipe.execute()
