"""Async Redis stores over ``redis.asyncio``: the session-state read and the rate-limit checks,
running the very scripts of the synchronous stores (:mod:`storno_security.stores.redis`) on the
same keys, with the same reply checks and error translation. Needs the ``async`` extra (the
``redis`` package).
"""

from __future__ import annotations

from typing import Any

import redis.asyncio

from storno_security.errors import CorruptRecordError
from storno_security.ratelimit.storage import Acquisition
from storno_security.stores._records import lookup
from storno_security.stores.redis._base import (
    _LUA_PRELUDE,
    _bad_reply,
    _check_str,
    _int_reply,
    _redis_errors,
)

# The synchronous stores' scripts and checks: one copy, so both modes share one state.
from storno_security.stores.redis.ratelimit import (
    _BUCKET_SCRIPT,
    _FULL,
    _MAX_LOG,
    _SAFE,
    _WINDOW_SCRIPT,
    _acquisition,
    _check_range,
)
from storno_security.stores.redis.tokens import _STATE_SCRIPT, _parse_epoch
from storno_security.tokens.storage import SessionState

__all__ = ["AsyncRedisRateLimitStorage", "AsyncRedisSessionStateStore"]


class _AsyncRedisStore:
    def __init__(self, client: redis.asyncio.Redis[Any], *, prefix: str = "storno:") -> None:
        self._client = client
        self._prefix = _check_str("prefix", prefix)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prefix={self._prefix!r})"


class AsyncRedisSessionStateStore(_AsyncRedisStore):
    """The session-state read of :class:`~storno_security.stores.redis.RedisSessionStateStore`
    on ``redis.asyncio``: one script reading ``{prefix}epoch:{user_id}`` and
    ``{prefix}revoked:{session_id}``.

    Args:
        client: a ``redis.asyncio`` client (``decode_responses`` either way).
        prefix: the synchronous store's prefix.

    Raises:
        TypeError: ``prefix`` is not a str.
    """

    def __init__(self, client: redis.asyncio.Redis[Any], *, prefix: str = "storno:") -> None:
        super().__init__(client, prefix=prefix)
        self._state = client.register_script(_LUA_PRELUDE + _STATE_SCRIPT)

    async def session_state(self, *, user_id: str, session_id: str) -> SessionState:
        """See :meth:`~storno_security.aio.AsyncSessionStateStore.session_state`."""
        user, session = lookup("user_id", user_id), lookup("session_id", session_id)
        keys = [f"{self._prefix}epoch:{user or ''}", f"{self._prefix}revoked:{session or ''}"]
        with _redis_errors():
            values = await self._state(keys=keys)
        if not isinstance(values, list) or len(values) != 4:
            _bad_reply()
        epoch, epoch_fields, marker, marker_fields = values
        if (epoch is None and _int_reply(epoch_fields)) or (marker is None and marker_fields):
            raise CorruptRecordError(reason="bad_value")
        revoked = session is not None and marker is not None
        return SessionState(epoch=0 if user is None else _parse_epoch(epoch), revoked=revoked)


class AsyncRedisRateLimitStorage(_AsyncRedisStore):
    """Sliding logs and token buckets of
    :class:`~storno_security.stores.redis.RedisRateLimitStorage` on ``redis.asyncio``: one
    ``EVALSHA`` of the same script per check, on the same keys.

    Args:
        client: a ``redis.asyncio`` client with short socket timeouts.
        prefix: the synchronous storage's prefix.

    Raises:
        TypeError: ``prefix`` is not a str.
    """

    def __init__(self, client: redis.asyncio.Redis[Any], *, prefix: str = "storno:") -> None:
        super().__init__(client, prefix=prefix)
        self._window = client.register_script(_LUA_PRELUDE + _WINDOW_SCRIPT)
        self._bucket = client.register_script(_LUA_PRELUDE + _BUCKET_SCRIPT)

    async def acquire_window(
        self, key: str, *, limit: int, window_ms: int, now_ms: int
    ) -> Acquisition:
        """See :meth:`~storno_security.aio.AsyncRateLimitStorage.acquire_window`.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: a number is out of range.
        """
        full_key = self._prefix + _check_str("key", key)
        _check_range("now_ms", now_ms, -_SAFE, _SAFE)
        _check_range("window_ms", window_ms, 1, _SAFE)
        _check_range("limit", limit, 1, _MAX_LOG)
        with _redis_errors():
            reply: Any = await self._window(keys=[full_key], args=[now_ms, window_ms, limit])
        return _acquisition(reply)

    async def acquire_bucket(
        self, key: str, *, capacity: int, refill_amount: int, refill_period_ms: int, now_ms: int
    ) -> Acquisition:
        """See :meth:`~storno_security.aio.AsyncRateLimitStorage.acquire_bucket`.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: a number is out of range.
        """
        full_key = self._prefix + _check_str("key", key)
        _check_range("now_ms", now_ms, -_SAFE, _SAFE)
        _check_range("refill_period_ms", refill_period_ms, 1, _FULL)
        _check_range("capacity", capacity, 1, _FULL // refill_period_ms)
        _check_range("refill_amount", refill_amount, 1, _FULL)
        with _redis_errors():
            reply: Any = await self._bucket(
                keys=[full_key], args=[now_ms, capacity, refill_amount, refill_period_ms]
            )
        return _acquisition(reply)
