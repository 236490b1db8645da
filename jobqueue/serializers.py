"""How job arguments and results are stored: JSON by default, pickle by opt-in.

JSON keeps a shared Redis from being a code-execution channel into every
worker: a worker only unpickles data when it was started with pickle allowed.
Both serializers produce text, so any redis-py connection (bytes or
decode_responses) can carry them.
"""

from __future__ import annotations

import base64
import json
import pickle
from typing import Any, Protocol

from .exceptions import DeserializationError, SerializationError


class Serializer(Protocol):
    name: str

    def dumps(self, value: Any) -> str: ...

    def loads(self, text: str) -> Any: ...


class JSONSerializer:
    name = "json"
    _encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode  # built once: dumps() would rebuild it

    def dumps(self, value: Any) -> str:
        try:
            return self._encode(value)
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"{exc}; jobqueue stores data as JSON by default: pass JSON-friendly values "
                "(str, int, float, bool, None, list, dict), or opt in with serializer='pickle'"
            ) from None

    def loads(self, text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError as exc:
            raise DeserializationError(f"stored data is not valid JSON: {exc}") from None


class PickleSerializer:
    name = "pickle"

    def dumps(self, value: Any) -> str:
        try:
            return base64.b64encode(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)).decode()
        except Exception as exc:
            raise SerializationError(f"cannot pickle {type(value).__name__}: {exc}") from None

    def loads(self, text: str) -> Any:
        try:
            return pickle.loads(base64.b64decode(text))
        except Exception as exc:
            raise DeserializationError(f"stored data is not a valid pickle: {exc}") from None


SERIALIZERS: dict[str, Serializer] = {"json": JSONSerializer(), "pickle": PickleSerializer()}


def get_serializer(name: str | Serializer | None) -> Serializer:
    if name is None:
        return SERIALIZERS["json"]
    if not isinstance(name, str):
        return name
    try:
        return SERIALIZERS[name]
    except KeyError:
        raise SerializationError(f"unknown serializer {name!r}; use 'json' or 'pickle'") from None
