"""MFA stores in Redis: TOTP replay guard, login challenges, step-up tokens, per-user failure
counts. Needs the ``redis`` extra. (Backup codes live in SQL or memory: they are long-lived
records, not cache entries.)

Keys (``prefix`` defaults to ``storno:``):

* ``{prefix}mfa:totp:{user_id}``: the user's last accepted TOTP step, with a time-to-live that
  ends at the caller's ``until`` (the step's window plus a margin), after which every code that
  can still be accepted has a later step anyway;
* ``{prefix}mfa:challenge:{token_hash}``: a hash (user, methods, times, failures, limit) that
  lives until the challenge expires; consuming it deletes it;
* ``{prefix}mfa:stepup:{token_hash}``: a hash (user, action, method, times) that lives until the
  token expires; using it deletes it;
* ``{prefix}mfa:failures:{user_id}``: a hash (count, window end) of the user's second-factor
  attempts that lives until the window ends; a right code deletes it.

Times are integer microseconds since the epoch. Time-to-live is computed from the record's own
times (``expires_at - created_at``), never from the Redis host's clock against the caller's;
liveness is also checked against the caller's ``now`` inside each script. Every method is one
command or one Lua script: one round trip, atomic.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, TypeVar

import redis
from redis.commands.core import Script

from storno_security.clock import ensure_aware_utc
from storno_security.errors import CorruptRecordError, StoreError
from storno_security.mfa.storage import (
    FailureCount,
    StoredChallenge,
    StoredStepUp,
    _check_window,
)
from storno_security.stores.redis._base import (
    _bad_reply,
    _call,
    _check_str,
    _fields,
    _int,
    _int_reply,
    _micros,
    _SelfExpiringStore,
    _text,
    _time,
    _ttl_ms,
)

__all__ = [
    "RedisMfaChallengeStore",
    "RedisMfaFailureStore",
    "RedisStepUpStore",
    "RedisTotpReplayStore",
]

_R = TypeVar("_R")

# KEYS[1]: the user's step key. ARGV[1]: the step; ARGV[2]: time-to-live in ms (positive).
_RECORD_STEP = """
local current = redis.call('GET', KEYS[1])
if current then
    local last = int(current)
    if last == nil then
        return corrupt('the TOTP step key does not hold a step')
    end
    if last >= tonumber(ARGV[1]) then
        return 0
    end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS[1]: a record key. ARGV[1]: ttl in ms; ARGV[2..]: field, value pairs.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
    return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""

# Liveness of a challenge at ARGV[1] (now, µs): exists, not expired, failures below the limit.
# A key that exists without these fields as integers is corrupt, not absent.
_CHALLENGE_LIVE = """
local v = redis.call('HMGET', KEYS[1], 'expires_at', 'failures', 'max_failures')
if not (v[1] or v[2] or v[3]) and redis.call('EXISTS', KEYS[1]) == 0 then
    return false
end
local expires_at, failures, limit = int(v[1]), int(v[2]), int(v[3])
if expires_at == nil or failures == nil or limit == nil then
    return corrupt('malformed challenge')
end
if expires_at <= tonumber(ARGV[1]) or failures >= limit then
    return false
end
"""

_RECORD_FAILURE = (
    _CHALLENGE_LIVE
    + """
return redis.call('HINCRBY', KEYS[1], 'failures', 1)
"""
)

_CONSUME_CHALLENGE = (
    _CHALLENGE_LIVE
    + """
local record = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return record
"""
)

# KEYS[1]: the user's failure key. ARGV[1]: now (µs); ARGV[2]: the end of a new window (µs);
# ARGV[3]: its time-to-live in ms (positive). A live window (it ends after now) counts one more;
# anything else starts a new window at 1. Returns {count, window end (µs, as stored)}.
_RECORD_ATTEMPT = """
local v = redis.call('HMGET', KEYS[1], 'failures', 'window_ends_at')
if v[1] or v[2] or redis.call('EXISTS', KEYS[1]) == 1 then
    local failures, ends = int(v[1]), int(v[2])
    if failures == nil or ends == nil or failures < 0 then
        return corrupt('malformed failure count')
    end
    if ends > tonumber(ARGV[1]) then
        return {redis.call('HINCRBY', KEYS[1], 'failures', 1), v[2]}
    end
end
redis.call('HSET', KEYS[1], 'failures', 1, 'window_ends_at', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, ARGV[2]}
"""

# ARGV[1]: user id; ARGV[2]: action; ARGV[3]: now (µs).
_CONSUME_GRANT = """
local v = redis.call('HMGET', KEYS[1], 'user_id', 'action', 'expires_at')
if not (v[1] or v[2] or v[3]) and redis.call('EXISTS', KEYS[1]) == 0 then
    return false
end
local expires_at = int(v[3])
if not v[1] or not v[2] or expires_at == nil then
    return corrupt('malformed step-up token')
end
if v[1] ~= ARGV[1] or v[2] ~= ARGV[2] then
    return false
end
if expires_at <= tonumber(ARGV[3]) then
    return false
end
local record = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return record
"""


class _UserScriptStore(_SelfExpiringStore):
    """A record per user under ``{prefix}{namespace}{user_id}``, written by one Lua script."""

    _namespace: ClassVar[str]
    _record_script: ClassVar[str]

    def __init__(self, client: redis.Redis[Any], *, prefix: str = "storno:") -> None:
        super().__init__(client, prefix=prefix)
        self._record = self._script(self._record_script)

    def _user_key(self, user_id: str) -> str:
        return self._key(self._namespace, "user_id", user_id)


class RedisTotpReplayStore(_UserScriptStore):
    """The last accepted TOTP step of each user, in Redis.

    Args:
        client: a synchronous redis-py client (``decode_responses`` either way).
        prefix: starts every key: ``{prefix}mfa:totp:{user_id}``.

    Raises:
        TypeError: ``prefix`` is not a str.
    """

    _namespace = "mfa:totp:"
    _record_script = _RECORD_STEP

    def record_step(self, user_id: str, step: int, *, now: datetime, until: datetime) -> bool:
        """Compare-and-set the user's last step in one Lua script.

        The key lives until ``until`` (at least a millisecond).

        Returns:
            Whether the step was recorded (``False``: a replay).

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``step`` is negative, or a time is naive.
            StoreUnavailableError: Redis could not be reached or failed the script.
            CorruptRecordError: the key holds something other than a step.
        """
        key = self._user_key(user_id)
        if isinstance(step, bool) or not isinstance(step, int):
            raise TypeError("step must be an int")
        if step < 0:
            raise ValueError("step must not be negative")
        ttl = max(_ttl_ms(now, until), 1)
        return bool(_call(lambda: self._record(keys=[key], args=[step, ttl])) == 1)


class _HashRecordStore(_SelfExpiringStore):
    """Records kept as Redis hashes under ``{prefix}{namespace}{token_hash}``, created once with
    a time-to-live that ends when the record expires."""

    _namespace: ClassVar[str]
    _what: ClassVar[str]
    _consume_script: ClassVar[str]  # checks, reads and deletes a live record

    def __init__(self, client: redis.Redis[Any], *, prefix: str = "storno:") -> None:
        super().__init__(client, prefix=prefix)
        self._create = self._script(_CREATE)
        self._consume = self._script(self._consume_script)

    def _record_key(self, token_hash: str) -> str:
        return self._key(self._namespace, "token_hash", token_hash)

    def _run(self, script: Script, token_hash: str, *args: str | int) -> object:
        """One call of ``script`` on the record's key."""
        key = self._record_key(token_hash)
        return _call(lambda: script(keys=[key], args=list(args)))

    def _create_record(
        self, token_hash: str, created_at: datetime, expires_at: datetime, fields: list[str | int]
    ) -> None:
        """Write the hash ``fields`` (plus the times) in one script, unless expired already."""
        ttl = _ttl_ms(created_at, expires_at)
        if ttl <= 0:
            return
        key = self._record_key(token_hash)
        args = [ttl, *fields, "created_at", _micros(created_at), "expires_at", _micros(expires_at)]
        if _call(lambda: self._create(keys=[key], args=args)) != 1:
            raise StoreError(f"{self._what} token hash exists already", reason="duplicate")

    def _consume_record(
        self, token_hash: str, build: Callable[[dict[str, object]], _R], *args: str | int
    ) -> _R | None:
        """Run the consume script with ``args``; ``build`` the record from the hash it read and
        deleted, or ``None`` if it found no live record. A missing field is corrupt."""
        reply = self._run(self._consume, token_hash, *args)
        if reply is None:
            return None
        fields = _fields(reply)
        return _missing_fields_are_corrupt(lambda: build(fields))


def _missing_fields_are_corrupt(build: Callable[[], _R]) -> _R:
    try:
        return build()
    except KeyError:
        raise CorruptRecordError(reason="missing_field") from None


class RedisMfaChallengeStore(_HashRecordStore):
    """MFA login challenges in Redis hashes.

    Args:
        client: a synchronous redis-py client (``decode_responses`` either way).
        prefix: starts every key: ``{prefix}mfa:challenge:{token_hash}``.

    Raises:
        TypeError: ``prefix`` is not a str.
    """

    _namespace = "mfa:challenge:"
    _what = "challenge"
    _consume_script = _CONSUME_CHALLENGE

    def __init__(self, client: redis.Redis[Any], *, prefix: str = "storno:") -> None:
        super().__init__(client, prefix=prefix)
        self._fail = self._script(_RECORD_FAILURE)

    def create_challenge(self, challenge: StoredChallenge) -> None:
        """Store a new challenge that Redis forgets when it expires. A challenge that is
        expired already is not written.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: a time is naive, or ``methods`` is empty or has a comma.
            StoreError: the token hash exists already (``reason="duplicate"``).
            StoreUnavailableError: Redis could not be reached or failed the script.
        """
        if not isinstance(challenge, StoredChallenge):
            raise TypeError("challenge must be a StoredChallenge")
        if not challenge.methods or any(
            not isinstance(m, str) or not m or "," in m for m in challenge.methods
        ):
            raise ValueError("methods must be non-empty strs without commas")
        fields: list[str | int] = [
            "user_id",
            challenge.user_id,
            "methods",
            ",".join(challenge.methods),
            "failures",
            challenge.failures,
            "max_failures",
            challenge.max_failures,
        ]
        self._create_record(
            challenge.token_hash, challenge.created_at, challenge.expires_at, fields
        )

    @staticmethod
    def _challenge(token_hash: str, fields: dict[str, object]) -> StoredChallenge:
        return StoredChallenge(
            token_hash=token_hash,
            user_id=_text(fields["user_id"], "bad_user_id"),
            methods=tuple(_text(fields["methods"], "bad_methods").split(",")),
            created_at=_time(fields["created_at"]),
            expires_at=_time(fields["expires_at"]),
            max_failures=_int(fields["max_failures"], "bad_count"),
            failures=_int(fields["failures"], "bad_count"),
        )

    def get_challenge(self, token_hash: str, *, now: datetime) -> StoredChallenge | None:
        """Return the challenge if it is live (one ``HGETALL``), else ``None``.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``now`` is naive.
            StoreUnavailableError: Redis could not be reached or failed the command.
            CorruptRecordError: the record is malformed.
        """
        key = self._record_key(token_hash)
        now = ensure_aware_utc(now)
        reply = _call(lambda: self._client.hgetall(key))
        if not isinstance(reply, dict):
            _bad_reply()
        if not reply:
            return None
        fields = _fields(reply)
        challenge = _missing_fields_are_corrupt(lambda: self._challenge(token_hash, fields))
        if challenge.expires_at <= now or challenge.failures >= challenge.max_failures:
            return None
        return challenge

    def record_failure(self, token_hash: str, *, now: datetime) -> int | None:
        """Count one failure against a live challenge in one Lua script (``HINCRBY``).

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``now`` is naive.
            StoreUnavailableError: Redis could not be reached or failed the script.
            CorruptRecordError: the record is malformed.
        """
        reply = self._run(self._fail, token_hash, _micros(now))
        return None if reply is None else _int_reply(reply)

    def consume_challenge(self, token_hash: str, *, now: datetime) -> StoredChallenge | None:
        """End a live challenge in one Lua script (read and ``DEL``).

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``now`` is naive.
            StoreUnavailableError: Redis could not be reached or failed the script.
            CorruptRecordError: the record is malformed.
        """
        return self._consume_record(
            token_hash, lambda fields: self._challenge(token_hash, fields), _micros(now)
        )


class RedisStepUpStore(_HashRecordStore):
    """Step-up verification tokens in Redis hashes.

    Args:
        client: a synchronous redis-py client (``decode_responses`` either way).
        prefix: starts every key: ``{prefix}mfa:stepup:{token_hash}``.

    Raises:
        TypeError: ``prefix`` is not a str.
    """

    _namespace = "mfa:stepup:"
    _what = "step-up"
    _consume_script = _CONSUME_GRANT

    def create_grant(self, grant: StoredStepUp) -> None:
        """Store a new step-up token that Redis forgets when it expires. A token that is
        expired already is not written.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: a time is naive.
            StoreError: the token hash exists already (``reason="duplicate"``).
            StoreUnavailableError: Redis could not be reached or failed the script.
        """
        if not isinstance(grant, StoredStepUp):
            raise TypeError("grant must be a StoredStepUp")
        fields: list[str | int] = [
            "user_id",
            grant.user_id,
            "action",
            grant.action,
            "method",
            grant.method,
        ]
        self._create_record(grant.token_hash, grant.created_at, grant.expires_at, fields)

    def consume_grant(
        self, token_hash: str, *, user_id: str, action: str, now: datetime
    ) -> StoredStepUp | None:
        """Use the token in one Lua script: checked (user, action, time), read and deleted.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``now`` is naive.
            StoreUnavailableError: Redis could not be reached or failed the script.
            CorruptRecordError: the record is malformed.
        """
        user_id, action = _check_str("user_id", user_id), _check_str("action", action)
        return self._consume_record(
            token_hash,
            lambda fields: StoredStepUp(
                token_hash=token_hash,
                user_id=_text(fields["user_id"], "bad_user_id"),
                action=_text(fields["action"], "bad_action"),
                method=_text(fields["method"], "bad_method"),
                created_at=_time(fields["created_at"]),
                expires_at=_time(fields["expires_at"]),
            ),
            user_id,
            action,
            _micros(now),
        )


class RedisMfaFailureStore(_UserScriptStore):
    """Per-user counts of second-factor attempts in Redis hashes.

    Args:
        client: a synchronous redis-py client (``decode_responses`` either way).
        prefix: starts every key: ``{prefix}mfa:failures:{user_id}``.

    Raises:
        TypeError: ``prefix`` is not a str.
    """

    _namespace = "mfa:failures:"
    _record_script = _RECORD_ATTEMPT

    def record_attempt(
        self, user_id: str, *, now: datetime, window_ends_at: datetime
    ) -> FailureCount:
        """Count one attempt in one Lua script (``HINCRBY`` on a live window, else a new window
        with ``PEXPIRE`` at its end).

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: a time is naive, or the window empty.
            StoreUnavailableError: Redis could not be reached or failed the script.
            CorruptRecordError: the key holds something this store does not write.
        """
        key = self._user_key(user_id)
        now, window_ends_at = _check_window(now, window_ends_at)
        args = [_micros(now), _micros(window_ends_at), _ttl_ms(now, window_ends_at)]
        reply = _call(lambda: self._record(keys=[key], args=args))
        if not isinstance(reply, list) or len(reply) != 2:
            _bad_reply()
        return FailureCount(failures=_int_reply(reply[0]), window_ends_at=_time(reply[1]))

    def clear_failures(self, user_id: str) -> None:
        """Delete the user's count (one ``DEL``).

        Raises:
            TypeError: ``user_id`` is not a str.
            StoreUnavailableError: Redis could not be reached or failed the command.
        """
        key = self._user_key(user_id)
        _call(lambda: self._client.delete(key))
