"""Turning a job's dotted function path into a callable.

Workers import functions only by dotted path, optionally limited to an
allow-list of module prefixes: JSON data in Redis can name code but not carry
it (pickle, by opt-in, can). The allow-list checks the dotted name only.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Iterable

from .exceptions import ImportFunctionError


def func_path(func: Callable[..., Any] | str) -> str:
    """The dotted path a worker will import; rejects what it could not."""
    if isinstance(func, str):
        if "." not in func or not all(part.isidentifier() for part in func.split(".")):
            raise ImportFunctionError(f"{func!r} is not a dotted path like 'package.module.function'")
        return func
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


class FunctionImporter:
    def __init__(self, allowed_prefixes: Iterable[str] | None = None) -> None:
        self.allowed = tuple(allowed_prefixes or ())
        self._cache: dict[str, Callable[..., Any]] = {}

    def allows(self, path: str) -> bool:
        return not self.allowed or any(path == p or path.startswith(p.rstrip(".") + ".") for p in self.allowed)

    def __call__(self, path: str) -> Callable[..., Any]:
        cached = self._cache.get(path)
        if cached is not None:
            return cached
        if not self.allows(path):
            raise ImportFunctionError(
                f"{path} is not in this worker's allow-list ({', '.join(self.allowed)}); "
                "start the worker with --allow <prefix> to permit it"
            )
        func = self._resolve(path)
        self._cache[path] = func
        return func

    @staticmethod
    def _resolve(path: str) -> Callable[..., Any]:
        parts = path.split(".")
        for split in range(len(parts) - 1, 0, -1):
            module_name, attrs = ".".join(parts[:split]), parts[split:]
            try:
                obj: Any = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name and module_name.startswith(exc.name):
                    continue  # try a shorter module path (Class.method)
                raise ImportFunctionError(f"importing {module_name} for {path} failed: {exc}") from None
            except Exception as exc:
                raise ImportFunctionError(f"importing {module_name} for {path} failed: {exc!r}") from None
            try:
                for attr in attrs:
                    obj = getattr(obj, attr)
            except AttributeError:
                raise ImportFunctionError(f"module {module_name} has no {'.'.join(attrs)} (job function {path})") from None
            if not callable(obj):
                raise ImportFunctionError(f"{path} is not callable")
            return obj
        raise ImportFunctionError(
            f"cannot import {path}: no module {parts[0]!r} on the worker's path "
            "(run the worker from your project directory or pass --path)"
        )
