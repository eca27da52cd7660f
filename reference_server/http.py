"""Request-body helpers: strict JSON in, clear 4xx errors for every malformed input (SRV-2)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, NoReturn, Protocol

import falcon

from reference_server.errors import ApiError

#: The Falcon WSGI application type.
WsgiApp = falcon.App[falcon.Request, falcon.Response]


class Router(Protocol):
    """Where a resource module adds its routes (the app's route table, see ``app.py``)."""

    def add_route(self, uri_template: str, resource: object) -> None: ...


__all__ = [
    "Router",
    "WsgiApp",
    "bad_request",
    "body_bool",
    "body_int",
    "body_text",
    "iso",
    "read_json",
]


def bad_request(message: str, *, field: str | None = None) -> NoReturn:
    extra = {"field": field} if field else None
    raise ApiError(400, "invalid_request", message, extra=extra)


def _refuse_constant(name: str) -> NoReturn:
    bad_request(f"invalid JSON number {name}")


def read_json(req: falcon.Request, *, max_bytes: int) -> dict[str, Any]:
    """The request body as a JSON object.

    Raises:
        ApiError: 415 when the body is not ``application/json``, 413 when it is larger than
            ``max_bytes``, 400 when it is not one UTF-8 JSON object.
    """
    content_type = (req.content_type or "").split(";", 1)[0].strip().lower()
    if content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "Send the body as application/json.")
    length = req.content_length
    if length is not None and length > max_bytes:
        raise ApiError(413, "payload_too_large", "The request body is too large.")
    raw = req.bounded_stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise ApiError(413, "payload_too_large", "The request body is too large.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        bad_request("The body is not valid UTF-8.")
    if _too_deep(text):
        bad_request(f"The body nests deeper than {MAX_JSON_DEPTH} levels.")
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        bad_request("The body is not valid JSON.")
    if not isinstance(value, dict):
        bad_request("The body must be a JSON object.")
    if not _encodable(value):
        # "\ud800" is valid JSON but no valid text: no store could keep it.
        bad_request("The body holds a lone surrogate (\\uD800-\\uDFFF): not valid Unicode text.")
    return value


#: Deeper JSON is refused before parsing (the parser recurses once per level).
MAX_JSON_DEPTH = 32


_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def _too_deep(text: str) -> bool:
    """Whether brackets nest deeper than :data:`MAX_JSON_DEPTH` (brackets in strings ignored)."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        else:
            depth -= 1
    return False


def _encodable(value: object) -> bool:
    """Every string (keys included) of a parsed JSON value encodes as UTF-8."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def body_text(
    body: dict[str, Any],
    name: str,
    *,
    max_length: int = 1024,
    required: bool = True,
    min_length: int = 1,
) -> str | None:
    """A string field; ``None`` only when optional and absent or null."""
    value = body.get(name)
    if value is None:
        if required:
            bad_request(f"'{name}' is required.", field=name)
        return None
    if not isinstance(value, str):
        bad_request(f"'{name}' must be a string.", field=name)
    if not min_length <= len(value) <= max_length:
        bad_request(f"'{name}' must be {min_length} to {max_length} characters.", field=name)
    if "\x00" in value:
        bad_request(f"'{name}' must not contain NUL.", field=name)
    return value


def required_text(body: dict[str, Any], name: str, *, max_length: int = 1024) -> str:
    value = body_text(body, name, max_length=max_length, required=True)
    assert value is not None
    return value


def body_int(
    body: dict[str, Any], name: str, *, minimum: int, maximum: int, required: bool = True
) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            bad_request(f"'{name}' is required.", field=name)
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        bad_request(f"'{name}' must be an integer.", field=name)
    if not minimum <= value <= maximum:
        bad_request(f"'{name}' must be between {minimum} and {maximum}.", field=name)
    return value


def body_bool(body: dict[str, Any], name: str, *, default: bool = False) -> bool:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        bad_request(f"'{name}' must be true or false.", field=name)
    return value


def iso(value: datetime | None) -> str | None:
    """An aware datetime as RFC 3339 UTC with a ``Z``."""
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")
