"""Settings: command-line flag > DOWNLOADER_* environment > config file > built-in default.

One schema (``RANGES``) checks every setting the same way wherever it came
from; an error names the setting, where it came from (``--flag``,
``DOWNLOADER_X``, ``file:line``) and what is allowed."""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .exceptions import ConfigError

DEFAULT_CONFIG = Path("config/downloader.toml")


@dataclass(frozen=True)
class Settings:
    redis_url: str = ""
    queue: str = "downloads"
    dir: str = "downloads"
    root: str = ""
    concurrency: int = 64
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    retries: int = 3
    retry_intervals: list[float] = field(default_factory=lambda: [1, 5, 30])
    max_retry_after: float = 3600.0
    max_size: int = 52428800
    check_image: bool = True
    api_url: str = "https://api.imgur.com"
    pages: int = 1
    job_timeout: int = 600
    user_agent: str = "downloader/0.1 (+jobqueue)"
    stale_part_age: float = 86400.0
    keep_runs: float = 2592000.0
    name_template: str = ""
    metadata: bool = False
    archive: str = "default"
    per_host: int = 16
    rate: float = 0.0
    limit_rate: int = 0
    hosts: dict = field(default_factory=dict)
    shards: int = 1

    def host_limits(self, host: str) -> tuple[int, float]:
        """(requests in flight, request starts a second) for ``host``: its
        entry in the [hosts] table, else per_host and rate."""
        entry = self.hosts.get(host, {})
        return int(entry.get("per_host", self.per_host)), float(entry.get("rate", self.rate))

    def with_overrides(self, **values: Any) -> "Settings":
        """Command-line flags on top: checked like every other source."""
        types = _types()
        return replace(self, **{k: _check(k, types[k], v, f"--{k.replace('_', '-')}")
                                for k, v in values.items() if v is not None})


# (lowest, highest) allowed; for a list, the range of each item. Strings must not be empty.
RANGES: dict[str, tuple[float, float]] = {
    "concurrency": (1, 4096), "connect_timeout": (0.001, 3600), "read_timeout": (0.001, 86400),
    "retries": (0, 1000), "retry_intervals": (0, 86400 * 7), "max_retry_after": (0, 86400 * 7),
    "max_size": (1, 2**50), "pages": (1, 10_000), "job_timeout": (1, 86400 * 7), "stale_part_age": (0, 2**31),
    "keep_runs": (0, 2**31), "per_host": (0, 100_000), "rate": (0, 100_000), "limit_rate": (0, 2**40),
    "shards": (1, 1024),
}
NON_EMPTY = ("queue", "dir", "api_url", "user_agent")


def _check(name: str, kind: type, value: Any, origin: str) -> Any:
    """``value`` as a ``kind`` within its range, or a ConfigError that says where it came from."""
    low, high = RANGES.get(name, (-math.inf, math.inf))
    allowed = f"{kind.__name__} from {low:g} to {high:g}" if name in RANGES else kind.__name__
    try:
        if kind is list:
            items = json.loads(value) if isinstance(value, str) and value.strip().startswith("[") else value
            items = [x for x in items.split(",") if x.strip()] if isinstance(items, str) else items
            checked = [_number(float, x) for x in items]
            if not checked or not all(low <= x <= high for x in checked):
                raise ValueError(f"each must be from {low:g} to {high:g}")
            return checked
        if kind is bool:
            return _boolean(value)
        if kind is dict:
            return _hosts(value)
        if kind is str:
            text = str(value)
            if name in NON_EMPTY and not text.strip():
                raise ValueError("must not be empty")
            return text
        number = _number(kind, value)
        if not low <= number <= high:
            raise ValueError("out of range")
        return number
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{origin}: {name} = {value!r} is not valid ({exc}); expected {allowed}") from None


def _hosts(value: Any) -> dict[str, dict[str, float]]:
    """The [hosts] table: host -> {per_host, rate}, each checked like the setting of that name."""
    if isinstance(value, str):
        value = json.loads(value or "{}")  # DOWNLOADER_HOSTS='{"i.imgur.com": {"per_host": 64}}'
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ValueError('expected a table of hosts, e.g. [hosts."i.imgur.com"] per_host = 64')
    checked = {}
    for host, entry in value.items():
        unknown = set(entry) - {"per_host", "rate"}
        if unknown:
            raise ValueError(f"host {host!r}: unknown key(s) {', '.join(sorted(unknown))}; known: per_host, rate")
        checked[host.lower()] = {k: _check(k, int if k == "per_host" else float, v, f"[hosts.{host!r}]")
                                 for k, v in entry.items()}
    return checked


def _number(kind: type, value: Any) -> int | float:
    if isinstance(value, bool):
        raise ValueError("not a number")
    number = float(value) if isinstance(value, (int, float)) else float(str(value).strip())
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    if kind is int:
        if number != int(number):
            raise ValueError("not a whole number")
        return int(number)
    return number


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _types() -> dict[str, type]:
    defaults = Settings()
    return {f.name: type(getattr(defaults, f.name)) for f in fields(Settings)}


def _line_of(text: str, name: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(rf"\s*{re.escape(name)}\s*=", line):
            return number
    return 0


def load(config_path: str | Path | None = None, environ: dict[str, str] | None = None,
         **flags: Any) -> Settings:
    """Flags left as None fall through to the environment, the file, the default."""
    environ = dict(os.environ if environ is None else environ)
    types = _types()
    values: dict[str, Any] = {}
    path = config_path or environ.get("DOWNLOADER_CONFIG")
    if path or DEFAULT_CONFIG.is_file():
        path = Path(path or DEFAULT_CONFIG)
        try:
            text = path.read_text()
            data = tomllib.loads(text)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        unknown = set(data) - set(types)
        if unknown:
            raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(sorted(unknown))}; "
                              f"known: {', '.join(types)}")
        values.update({k: _check(k, types[k], v, f"{path}:{_line_of(text, k)}") for k, v in data.items()})
    for name, kind in types.items():
        env_value = environ.get(f"DOWNLOADER_{name.upper()}")
        if env_value is not None and env_value != "":
            values[name] = _check(name, kind, env_value, f"environment DOWNLOADER_{name.upper()}")
    if not environ.get("DOWNLOADER_REDIS_URL") and environ.get("JOBQUEUE_REDIS_URL"):
        values["redis_url"] = environ["JOBQUEUE_REDIS_URL"]  # one Redis setting serves both commands
    for name, value in flags.items():
        if value is not None:
            values[name] = _check(name, types[name], value, f"--{name.replace('_', '-')}")
    return Settings(**values)
