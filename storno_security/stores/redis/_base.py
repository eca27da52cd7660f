"""Shared machinery of the Redis stores: the store base (prefix, keys, scripts), error
translation, time-to-live from the caller's times, and reply parsing. Private: import from
:mod:`storno_security.stores.redis`."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, TypeVar

import redis
from redis.commands.core import Script

from storno_security.clock import ensure_aware_utc
from storno_security.errors import CorruptRecordError, StoreUnavailableError

_T = TypeVar("_T")

# Replies to INCR, GET and friends that mean the key does not hold what a store writes.
_CORRUPT_REPLIES = ("not an integer", "overflow", "WRONGTYPE")

_INTEGER = re.compile(r"-?[0-9]{1,18}")  # as the scripts' int() reads them
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_MILLISECOND = timedelta(milliseconds=1)

# Prepended to every script. Lua's tonumber reads "nan", "inf", "0x10", " 5", "1e3" and a
# 400-digit integer (as inf) as numbers, and a NaN or an infinity makes comparisons lie or a
# division loop forever inside Redis; so a stored value is read with int(): a decimal integer of
# at most 18 digits (finite, and in Redis' 64-bit range), or nil. A script that does arithmetic
# bounds its values further. corrupt() fails the script with a reply that _redis_errors turns
# into CorruptRecordError; a script calls it before it writes anything.
_LUA_PRELUDE = """
local function int(value)
    local digits = type(value) == 'string' and string.match(value, '^%-?(%d+)$')
    if digits and #digits <= 18 then
        return tonumber(value)
    end
    return nil
end
local function corrupt(what)
    return redis.error_reply('WRONGTYPE storno: ' .. what)
end
"""


@contextmanager
def _redis_errors() -> Iterator[None]:
    try:
        yield
    except redis.ResponseError as exc:
        if any(marker in str(exc) for marker in _CORRUPT_REPLIES):
            raise CorruptRecordError(reason="bad_value") from exc
        raise StoreUnavailableError("Redis refused the command", reason="refused") from exc
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StoreUnavailableError(reason="unavailable") from exc
    except redis.RedisError as exc:
        raise StoreUnavailableError(reason="redis_error") from exc


def _call(command: Callable[[], _T]) -> _T:
    with _redis_errors():
        return command()


def _check_str(name: str, value: object) -> str:
    """``value``, which must be a str (keys are built from it)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return value


class _RedisStore:
    """A store on one redis-py client whose keys all start with ``prefix``.

    Raises:
        TypeError: ``prefix`` is not a str.
    """

    def __init__(self, client: redis.Redis[Any], *, prefix: str = "storno:") -> None:
        self._client = client
        self._prefix = _check_str("prefix", prefix)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prefix={self._prefix!r})"

    def _key(self, namespace: str, name: str, value: object) -> str:
        """``{prefix}{namespace}{value}``; ``value`` (the argument ``name``) must be a str."""
        return f"{self._prefix}{namespace}{_check_str(name, value)}"

    def _script(self, body: str) -> Script:
        """Register a Lua script (with :data:`_LUA_PRELUDE`): one ``EVALSHA`` per call."""
        return self._client.register_script(_LUA_PRELUDE + body)


class _SelfExpiringStore(_RedisStore):
    """A store whose records carry a time-to-live, so Redis forgets them by itself."""

    def purge_expired(self, *, now: datetime) -> int:
        """Return 0: Redis forgets these records by itself when they expire.

        Raises:
            TypeError: ``now`` is not a datetime.
            ValueError: ``now`` is naive.
        """
        ensure_aware_utc(now)
        return 0


def _ttl_ms(now: datetime, until: datetime) -> int:
    """Milliseconds from ``now`` to ``until`` (both the caller's), rounded up; may be <= 0.

    Raises:
        TypeError: a time is not a datetime.
        ValueError: a time is naive.
    """
    return -(-(ensure_aware_utc(until) - ensure_aware_utc(now)) // _MILLISECOND)


def _micros(value: datetime) -> int:
    """A time as integer microseconds since the epoch (how scripts compare times)."""
    return (ensure_aware_utc(value) - _EPOCH) // _MICROSECOND


def _bad_reply() -> NoReturn:
    raise StoreUnavailableError("unexpected reply from Redis", reason="bad_reply")


def _int_reply(reply: object) -> int:
    """An integer reply (not a bool), else :class:`StoreUnavailableError`."""
    if isinstance(reply, bool) or not isinstance(reply, int):
        _bad_reply()
    return reply


def _text(value: object, reason: str) -> str:
    """A stored non-empty UTF-8 text, else :class:`CorruptRecordError` with ``reason``."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptRecordError(reason=reason) from None
    if not isinstance(value, str) or not value:
        raise CorruptRecordError(reason=reason)
    return value


def _int(value: object, reason: str) -> int:
    """A stored decimal integer of at most 18 digits, else :class:`CorruptRecordError`."""
    text = _text(value, reason)
    if _INTEGER.fullmatch(text) is None:
        raise CorruptRecordError(reason=reason)
    return int(text)


def _time(value: object) -> datetime:
    """A stored time (integer microseconds since the epoch)."""
    try:
        return _EPOCH + _int(value, "bad_datetime") * _MICROSECOND
    except OverflowError:
        raise CorruptRecordError(reason="bad_datetime") from None


def _fields(reply: object) -> dict[str, object]:
    """A hash as ``HGETALL`` answers it: a dict from redis-py, a flat list from a script."""
    if isinstance(reply, dict):
        pairs = list(reply.items())
    elif isinstance(reply, list) and not len(reply) % 2:
        pairs = [(reply[i], reply[i + 1]) for i in range(0, len(reply), 2)]
    else:
        _bad_reply()
    return {_text(k, "bad_field"): v for k, v in pairs}
