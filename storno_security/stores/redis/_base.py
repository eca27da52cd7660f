"""Shared machinery of the Redis stores: the store base (prefix, keys, scripts), error
translation, time-to-live from the caller's times, and reply parsing. Private: import from
:mod:`storno_security.stores.redis`."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, NoReturn, TypeVar

import redis
from redis.commands.core import Script

from storno_security.clock import ensure_aware_utc
from storno_security.errors import CorruptRecordError, StoreError, StoreUnavailableError

_T = TypeVar("_T")

# Replies to INCR, GET and friends that mean the key does not hold what a store writes.
_CORRUPT_REPLIES = ("not an integer", "overflow", "WRONGTYPE")

_INTEGER = re.compile(r"-?[0-9]{1,18}")  # as the scripts' int() reads them
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


_SAFE_POLICY = "noeviction"


def eviction_policy(client: redis.Redis[Any]) -> str | None:
    """The server's ``maxmemory-policy``, or None when it will not say.

    Asks ``CONFIG GET maxmemory-policy``; managed services often disable or rename ``CONFIG``
    (or an ACL refuses it), and then the ``maxmemory_policy`` line of ``INFO memory`` answers.
    When both are refused the policy is unknown (None): that is not an error here, since the
    caller decides what to make of it.

    Raises:
        StoreUnavailableError: Redis could not be reached.
    """
    return _setting(client, "maxmemory-policy", "memory", "maxmemory_policy")


def _setting(client: redis.Redis[Any], name: str, section: str, field: str) -> str | None:
    """``CONFIG GET name``, else the ``field`` line of ``INFO section``, lower-cased; None when
    both are refused (or answer nothing).

    Raises:
        StoreUnavailableError: Redis could not be reached.
    """
    for ask, key in (
        (lambda: client.config_get(name), name),
        (lambda: client.info(section), field),
    ):
        try:
            reply = _call(ask)
        except StoreUnavailableError as exc:
            if not isinstance(exc.__cause__, redis.ResponseError):
                raise  # unreachable, not refused
            continue
        if isinstance(reply, dict):
            found = {_decoded(k): _decoded(v) for k, v in reply.items()}.get(key)
            if found:
                return found.lower()
    return None


def _decoded(value: object) -> str | None:
    """A reply's text (redis-py gives bytes or str), else None."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):  # redis-py parses INFO's numbers
        return str(value)
    return value if isinstance(value, str) else None


def check_redis_safety(client: redis.Redis[Any], *, epochs: bool = False) -> list[str]:
    """What makes this Redis unfit for the security stores; an empty list when nothing does.

    The session, TOTP-replay, MFA and passkey stores rely on Redis keeping every key until it
    expires (or, for session epochs, for ever). Under any ``maxmemory-policy`` but
    ``noeviction``, a full Redis deletes keys early: a TOTP replay guard, and the same code is
    accepted again (MFA-2); a revoked-session marker, and the session comes back (REF-3); under
    an ``allkeys-*`` policy even a session epoch, and tokens from before a password change verify
    again (REF-4). Keep rate-limit keys, which may be evicted, in another Redis if you want a
    ``maxmemory`` policy for them.

    Args:
        client: the redis-py client the security stores use.
        epochs: this Redis holds session epochs (:class:`RedisSessionStateStore`): also report
            when append-only persistence is off (``appendonly no``), since a restart then loses
            every epoch bump since the last snapshot.

    Raises:
        StoreUnavailableError: Redis could not be reached.
    """
    problems = []
    policy = eviction_policy(client)
    if policy is None:
        problems.append(
            "maxmemory-policy is unknown (CONFIG GET and INFO were refused): make sure it is "
            "noeviction, or Redis may evict replay guards, revocations and epochs"
        )
    elif policy != _SAFE_POLICY:
        problems.append(
            f"maxmemory-policy is {policy!r}: when memory runs out Redis evicts keys, which "
            "lets a TOTP code be replayed, a revoked session come back or an old epoch verify "
            "again; set it to noeviction (and keep rate limits in another Redis)"
        )
    if epochs:
        appendonly = _setting(client, "appendonly", "persistence", "aof_enabled")
        if appendonly is None:
            problems.append(
                "persistence is unknown (CONFIG GET and INFO were refused): session epochs need "
                "append-only persistence (appendonly yes)"
            )
        elif appendonly not in ("yes", "1"):
            problems.append(
                "append-only persistence is off: a restart loses the session epochs bumped "
                "since the last snapshot, and tokens from before those password changes verify "
                "again; set appendonly yes"
            )
    return problems


def require_noeviction(client: redis.Redis[Any], *, allow_unknown: bool = False) -> None:
    """Refuse a Redis that may evict keys (see :func:`check_redis_safety`); call it at start-up.

    Args:
        client: the redis-py client the security stores use.
        allow_unknown: accept a server that will not tell its policy (a managed service with
            ``CONFIG`` and ``INFO`` disabled), once you have checked the setting yourself.

    Raises:
        StoreError: ``reason="eviction_policy"`` when the policy is not ``noeviction``;
            ``reason="eviction_policy_unknown"`` when the server will not say and
            ``allow_unknown`` is false.
        StoreUnavailableError: Redis could not be reached.
    """
    policy = eviction_policy(client)
    if policy is None:
        if not allow_unknown:
            raise StoreError(
                "cannot read Redis' maxmemory-policy; the security stores need noeviction",
                reason="eviction_policy_unknown",
            )
        return
    if policy != _SAFE_POLICY:
        raise StoreError(
            f"Redis' maxmemory-policy is {policy!r}; the security stores need noeviction",
            reason="eviction_policy",
        )


def _ttl_ms(now: datetime, until: datetime) -> int:
    """Milliseconds from ``now`` to ``until`` (both the caller's), rounded up; may be <= 0.

    Raises:
        TypeError: a time is not a datetime.
        ValueError: a time is naive.
    """
    return -(-(ensure_aware_utc(until) - ensure_aware_utc(now)) // _MILLISECOND)


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


def _fields(reply: object) -> dict[str, object]:
    """A hash as ``HGETALL`` answers it: a dict from redis-py, a flat list from a script."""
    if isinstance(reply, dict):
        pairs = list(reply.items())
    elif isinstance(reply, list) and not len(reply) % 2:
        pairs = [(reply[i], reply[i + 1]) for i in range(0, len(reply), 2)]
    else:
        _bad_reply()
    return {_text(k, "bad_field"): v for k, v in pairs}
