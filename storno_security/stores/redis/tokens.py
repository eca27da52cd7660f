"""Session state in Redis: epochs and revoked-session markers. Needs the ``redis`` extra.

Keys (``prefix`` defaults to ``storno:``):

* ``{prefix}epoch:{user_id}``: the user's session epoch, an integer written only by ``INCR``;
* ``{prefix}revoked:{session_id}``: a marker whose time-to-live is what remains of the revoked
  session's access tokens. Redis forgets it by itself, so :meth:`purge_expired` has nothing to
  do.

Every method is one command (or one Lua script), so one round trip and atomic. The keys of one
:meth:`~RedisSessionStateStore.session_state` call are read by one script (two ``GET``: unlike
``MGET``, which answers nil for a key of the wrong type, they fail on it); on Redis Cluster that
needs both keys in one slot, which this store does not arrange: use a single primary (with
replicas) or Sentinel.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import redis

from storno_security.errors import CorruptRecordError
from storno_security.stores.redis._base import (
    _bad_reply,
    _call,
    _int_reply,
    _SelfExpiringStore,
    _ttl_ms,
)
from storno_security.tokens.storage import SessionState

__all__ = ["RedisSessionStateStore"]

_EPOCH_FORMAT = re.compile(rb"0|[1-9][0-9]{0,18}")

# KEYS[1]: the epoch, KEYS[2]: the marker. GET (not MGET) fails on a key of the wrong type.
_STATE_SCRIPT = """
return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2])}
"""

# KEYS[1]: the marker. ARGV[1]: its time-to-live in milliseconds (a positive integer).
# Create the marker, or lengthen its time-to-live; never shorten it, never make it persistent.
# A key of another type is corrupt (session_state would not see it as a marker).
_REVOKE_SCRIPT = """
local ttl = tonumber(ARGV[1])
local current = redis.call('PTTL', KEYS[1])
if current == -2 then
    redis.call('SET', KEYS[1], '1', 'PX', ttl)
    return 1
end
if redis.call('TYPE', KEYS[1]).ok ~= 'string' then
    return corrupt('the revoked-session marker is not a string')
end
if current >= 0 and current < ttl then
    redis.call('PEXPIRE', KEYS[1], ttl)
    return 1
end
return 0
"""


class RedisSessionStateStore(_SelfExpiringStore):
    """Session epochs and revoked-session markers in Redis.

    Args:
        client: a synchronous redis-py client (``decode_responses`` either way).
        prefix: prepended to every key, so several applications can share one database.

    Raises:
        TypeError: ``prefix`` is not a str.
    """

    def __init__(self, client: redis.Redis[Any], *, prefix: str = "storno:") -> None:
        super().__init__(client, prefix=prefix)
        self._state = self._script(_STATE_SCRIPT)
        self._revoke = self._script(_REVOKE_SCRIPT)

    def _epoch_key(self, user_id: str) -> str:
        return self._key("epoch:", "user_id", user_id)

    def _revoked_key(self, session_id: str) -> str:
        return self._key("revoked:", "session_id", session_id)

    def session_state(self, *, user_id: str, session_id: str) -> SessionState:
        """Return the user's epoch and whether ``session_id`` is revoked, in one script.

        Raises:
            TypeError: an argument is not a str.
            StoreUnavailableError: Redis could not be reached or failed the script.
            CorruptRecordError: the epoch key holds something other than a non-negative
                integer, or either key is not a string.
        """
        keys = [self._epoch_key(user_id), self._revoked_key(session_id)]
        values = _call(lambda: self._state(keys=keys))
        if not isinstance(values, list) or len(values) != 2:
            _bad_reply()
        epoch, marker = values
        return SessionState(epoch=_parse_epoch(epoch), revoked=marker is not None)

    def current_epoch(self, user_id: str) -> int:
        """Return the user's epoch (0 if never bumped), with one ``GET``.

        Raises:
            TypeError: ``user_id`` is not a str.
            StoreUnavailableError: Redis could not be reached or failed the command.
            CorruptRecordError: the epoch key holds something other than a non-negative
                integer.
        """
        key = self._epoch_key(user_id)
        return _parse_epoch(_call(lambda: self._client.get(key)))

    def bump_epoch(self, user_id: str) -> int:
        """Atomically increase the user's epoch by one (``INCR``) and return the new value.

        Raises:
            TypeError: ``user_id`` is not a str.
            StoreUnavailableError: Redis could not be reached or failed the command; the epoch
                may or may not have moved.
            CorruptRecordError: the epoch key holds something other than an integer (nothing
                changed), or a negative one.
        """
        key = self._epoch_key(user_id)
        epoch = _int_reply(_call(lambda: self._client.incr(key)))
        if epoch < 1:
            raise CorruptRecordError(reason="bad_epoch")
        return epoch

    def revoke_session(self, session_id: str, *, now: datetime, until: datetime) -> None:
        """Mark a session revoked for ``until - now`` (rounded up to a millisecond).

        Idempotent; a later ``until`` wins: an existing marker's time-to-live is lengthened,
        never shortened. When ``until`` is not after ``now`` the session's access tokens have
        expired already and nothing is written.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: a time is naive.
            StoreUnavailableError: Redis could not be reached or failed the script.
            CorruptRecordError: the marker's key holds something other than a marker.
        """
        key = self._revoked_key(session_id)
        ttl_ms = _ttl_ms(now, until)
        if ttl_ms <= 0:
            return
        _call(lambda: self._revoke(keys=[key], args=[ttl_ms]))


def _parse_epoch(value: object) -> int:
    """An epoch as stored by ``INCR``: absent (0) or a canonical non-negative integer."""
    if value is None:
        return 0
    if isinstance(value, str):
        try:
            value = value.encode("ascii")
        except UnicodeEncodeError:
            raise CorruptRecordError(reason="bad_epoch") from None
    if not isinstance(value, bytes) or _EPOCH_FORMAT.fullmatch(value) is None:
        raise CorruptRecordError(reason="bad_epoch")
    return int(value)
