"""Turning a job's dotted function path into a callable, and deciding which
functions a worker may run at all.

A job names ``module.qualname``; the worker imports that module and takes a
function *defined* in it (its ``__module__`` is that module). It never walks
through another module's attributes, so ``app.tasks.os.system`` is refused
even though ``app.tasks`` imported ``os``.

What may run, by the defining module:
- no allow-list (the default): the application's own code only, i.e.
  modules that live outside the standard library and outside site-packages
  (as when ``rq worker`` is started in a project's directory);
- ``--allow PREFIX`` (repeatable, ``JOBQUEUE_ALLOW``): modules under those
  prefixes only;
- ``--allow '*'``: anything importable, re-exported names included (the
  worker says so when it starts); still never through a module's imports.
The check is made before the module is imported. JSON data in Redis can
thus name code but not carry it; pickle (an explicit opt-in) can.
"""

from __future__ import annotations

import functools

import importlib
import importlib.util
import os
import site
import sysconfig
import types
from typing import Any, Callable, Iterable

from .exceptions import ImportFunctionError

ANYTHING = "*"


@functools.lru_cache(maxsize=1024)  # every job of a big batch names the same function
def _dotted(func: str) -> str:
    if "." not in func or not all(part.isidentifier() for part in func.split(".")):
        raise ImportFunctionError(f"{func!r} is not a dotted path like 'package.module.function'")
    return func


def func_path(func: Callable[..., Any] | str) -> str:
    """The dotted path a worker will import; rejects what it could not."""
    if isinstance(func, str):
        return _dotted(func)
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise ImportFunctionError(
            f"{func!r} cannot be imported by a worker: enqueue a module-level function "
            "(not a lambda, a nested function or a bound method)"
        )
    if module == "__main__":
        raise ImportFunctionError(
            f"{qualname} is defined in __main__, which a worker cannot import: move it to a module"
        )
    return f"{module}.{qualname}"


def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    try:
        dirs.update(site.getsitepackages())
        dirs.add(site.getusersitepackages())
    except AttributeError:  # a virtualenv's old site.py
        pass
    return tuple(os.path.realpath(d) + os.sep for d in dirs if d)


def is_application_module(name: str) -> bool:
    """A module of the application's own: it has a file, outside the standard
    library and outside site-packages. Finding its spec imports its parent
    packages, not the module itself."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    origin = spec.origin if spec is not None else None
    if not origin or not os.path.isabs(origin):
        return False  # built-in, frozen, namespace package
    return not os.path.realpath(origin).startswith(_library_dirs())


class FunctionImporter:
    """``allowed_prefixes``: None or empty for the application's own code,
    module prefixes, or ``['*']`` for anything importable."""

    def __init__(self, allowed_prefixes: Iterable[str] | None = None) -> None:
        prefixes = tuple(allowed_prefixes or ())
        self.anything = ANYTHING in prefixes
        self.allowed = tuple(p for p in prefixes if p != ANYTHING)
        self._cache: dict[str, Callable[..., Any]] = {}

    def describe(self) -> str:
        if self.anything:
            return "anything importable (--allow '*')"
        return ", ".join(self.allowed) if self.allowed else "the application's own modules"

    def may_import(self, module: str) -> bool:
        if self.anything:
            return True
        if self.allowed:
            return any(module == p.rstrip(".") or module.startswith(p.rstrip(".") + ".") for p in self.allowed)
        return is_application_module(module)

    def __call__(self, path: str) -> Callable[..., Any]:
        cached = self._cache.get(path)
        if cached is None:
            cached = self._cache[path] = self._resolve(path)
        return cached

    def _resolve(self, path: str) -> Callable[..., Any]:
        parts = path.split(".")
        if not all(part.isidentifier() for part in parts) or len(parts) < 2:
            raise ImportFunctionError(f"{path!r} is not a dotted path like 'package.module.function'")
        refused = None
        for split in range(len(parts) - 1, 0, -1):  # the longest module prefix that exists
            module_name, attrs = ".".join(parts[:split]), parts[split:]
            if not self.may_import(module_name):
                refused = refused or module_name
                continue
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name and module_name.startswith(exc.name):
                    continue  # try a shorter module path (Class.method)
                raise ImportFunctionError(f"importing {module_name} for {path} failed: {exc}") from None
            except Exception as exc:
                raise ImportFunctionError(f"importing {module_name} for {path} failed: {exc!r}") from None
            return self._defined_in(module, attrs, path, strict=not self.anything)
        if refused is not None:
            raise ImportFunctionError(
                f"{path}: module {refused} is not among the modules this worker runs ({self.describe()}); "
                "start the worker with --allow <module prefix> to permit it")
        raise ImportFunctionError(
            f"cannot import {path}: no module {parts[0]!r} on the worker's path "
            "(run the worker from your project directory or pass --path)"
        )

    @staticmethod
    def _defined_in(module: types.ModuleType, attrs: list[str], path: str, strict: bool) -> Callable[..., Any]:
        """The function named by ``attrs``, if the module defines it: no step
        through another module, and (``strict``, unless '*') the function's
        ``__module__`` is this one."""
        obj: Any = module
        for attr in attrs:
            try:
                obj = getattr(obj, attr)
            except AttributeError:
                raise ImportFunctionError(f"module {module.__name__} has no {'.'.join(attrs)} "
                                          f"(job function {path})") from None
            if isinstance(obj, types.ModuleType):
                raise ImportFunctionError(f"{path} reaches into module {obj.__name__} through {module.__name__}: "
                                          f"name the function by the module that defines it")
        if not callable(obj):
            raise ImportFunctionError(f"{path} is not callable")
        defined = getattr(obj, "__module__", None)
        if strict and defined != module.__name__:
            raise ImportFunctionError(f"{path} is defined in {defined or 'no module'}, not in {module.__name__}: "
                                      f"name it by the module that defines it")
        return obj
