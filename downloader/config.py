"""Settings: command-line flag > DOWNLOADER_* environment > config file > built-in default."""

from __future__ import annotations

import json
import os
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

    def with_overrides(self, **values: Any) -> "Settings":
        return replace(self, **{k: v for k, v in values.items() if v is not None})


def _coerce(name: str, kind: type, value: Any, origin: str) -> Any:
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if kind is list:
            items = json.loads(value) if isinstance(value, str) and value.startswith("[") else value
            if isinstance(items, str):
                items = [x for x in items.split(",") if x.strip()]
            return [float(x) for x in items]
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{origin}: {name} = {value!r} is not a valid {kind.__name__} ({exc})") from None


def _types() -> dict[str, type]:
    defaults = Settings()
    return {f.name: type(getattr(defaults, f.name)) for f in fields(Settings)}


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
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        unknown = set(data) - set(types)
        if unknown:
            raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(sorted(unknown))}; "
                              f"known: {', '.join(types)}")
        values.update({k: _coerce(k, types[k], v, str(path)) for k, v in data.items()})
    for name, kind in types.items():
        env_value = environ.get(f"DOWNLOADER_{name.upper()}")
        if env_value is not None and env_value != "":
            values[name] = _coerce(name, kind, env_value, f"environment DOWNLOADER_{name.upper()}")
    if not environ.get("DOWNLOADER_REDIS_URL") and environ.get("JOBQUEUE_REDIS_URL"):
        values["redis_url"] = environ["JOBQUEUE_REDIS_URL"]  # one Redis setting serves both commands
    values.update({k: v for k, v in flags.items() if v is not None})
    return Settings(**values)
