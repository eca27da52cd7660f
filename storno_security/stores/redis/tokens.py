"""Session state in Redis: epochs and revoked-session markers. Needs the ``redis`` extra.

The shared adapter on Redis records: ``{prefix}epoch:{user_id}`` is the user's epoch (a record
that never expires, bumped by ``HINCRBY``), ``{prefix}revoked:{session_id}`` a marker kept for
what remains of the revoked session's access tokens (Redis forgets it by itself).
:meth:`~RedisSessionStateStore.session_state` reads both in one script (``HGET`` and ``HLEN``,
which fail on a key of the wrong type); on Redis Cluster that needs both keys in one slot, which
this store does not arrange: use a single primary (with replicas) or Sentinel.
"""

from __future__ import annotations

import re
from typing import Any

import redis

from storno_security.errors import CorruptRecordError
from storno_security.stores._adapters import SessionStates
from storno_security.stores._records import lookup
from storno_security.stores.redis._base import _bad_reply, _call, _int_reply
from storno_security.stores.redis._records import RedisBacked
from storno_security.tokens.storage import SessionState

__all__ = ["RedisSessionStateStore"]

_EPOCH_FORMAT = re.compile(rb"0|[1-9][0-9]{0,18}")

# A hash without its number is corrupt, as is a key of another type (HGET and HLEN fail on it).
_STATE_SCRIPT = """
return {redis.call('HGET', KEYS[1], 'number'), redis.call('HLEN', KEYS[1]),
    redis.call('HGET', KEYS[2], 'number'), redis.call('HLEN', KEYS[2])}
"""


class RedisSessionStateStore(RedisBacked, SessionStates):
    """Session epochs and revoked-session markers in Redis (see :class:`RedisBacked`)."""

    def __init__(self, client: redis.Redis[Any], *, prefix: str = "storno:") -> None:
        super().__init__(client, prefix=prefix)
        self._state = self._redis._script(_STATE_SCRIPT)
        self._prefix = prefix

    def session_state(self, *, user_id: str, session_id: str) -> SessionState:
        """See :meth:`~storno_security.tokens.storage.SessionStateStore.session_state`: one
        script. A key of the wrong type, or an epoch that is not a non-negative integer, is
        :class:`~storno_security.errors.CorruptRecordError`."""
        user, session = lookup("user_id", user_id), lookup("session_id", session_id)
        keys = [f"{self._prefix}epoch:{user or ''}", f"{self._prefix}revoked:{session or ''}"]
        values = _call(lambda: self._state(keys=keys))
        if not isinstance(values, list) or len(values) != 4:
            _bad_reply()
        epoch, epoch_fields, marker, marker_fields = values
        if (epoch is None and _int_reply(epoch_fields)) or (marker is None and marker_fields):
            raise CorruptRecordError(reason="bad_value")
        revoked = session is not None and marker is not None
        return SessionState(epoch=0 if user is None else _parse_epoch(epoch), revoked=revoked)


def _parse_epoch(value: object) -> int:
    """An epoch as stored: absent (0) or a canonical non-negative integer."""
    if value is None:
        return 0
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, bytes) or _EPOCH_FORMAT.fullmatch(value) is None:
        raise CorruptRecordError(reason="bad_epoch")
    return int(value)
