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
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any, Callable, Protocol

from .exceptions import DeserializationError, SerializationError


class Serializer(Protocol):
    name: str

    def dumps(self, value: Any) -> str: ...

    def loads(self, text: str) -> Any: ...


def _json_encoder() -> Callable[[Any], str]:
    """Compact JSON, no NaN. json's own encode() builds a C encoder for every
    call, which costs more than encoding a job's arguments (a producer makes
    millions): this one is built once. Without the per-call table of
    containers being encoded, a value that contains itself ends in a
    RecursionError, reported as such by dumps()."""
    if c_make_encoder is None:  # a Python without json's C accelerator
        return json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
    iterencode = c_make_encoder(None, json.JSONEncoder().default, encode_basestring_ascii, None, ":", ",",
                                False, False, False)
    return lambda value: "".join(iterencode(value, 0))


compact_json = _json_encoder()


class JSONSerializer:
    name = "json"
    _encode = staticmethod(compact_json)

    def dumps(self, value: Any) -> str:
        try:
            return self._encode(value)
        except RecursionError:
            raise SerializationError("a value contains itself (or is nested too deep) and cannot be stored as "
                                     "JSON; pass plain, finite data") from None
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
