"""MFA stores in Redis: TOTP replay guard, login challenges, step-up tokens. Needs the ``redis``
extra. (Backup codes live in SQL or memory: they are long-lived records, not cache entries.)

Keys (``prefix`` defaults to ``storno:``):

* ``{prefix}mfa:totp:{user_id}``: the user's last accepted TOTP step, with a time-to-live that
  ends at the caller's ``until`` (the step's window plus a margin), after which every code that
  can still be accepted has a later step anyway;
* ``{prefix}mfa:challenge:{token_hash}``: a hash (user, methods, times, failures, limit) that
  lives until the challenge expires; consuming it deletes it;
* ``{prefix}mfa:stepup:{token_hash}``: a hash (user, action, method, times) that lives until the
  token expires; using it deletes it.

Times are integer microseconds since the epoch. Time-to-live is computed from the record's own
times (``expires_at - created_at``), never from the Redis host's clock against the caller's;
liveness is also checked against the caller's ``now`` inside each script. Every method is one
command or one Lua script: one round trip, atomic.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from storno_security.clock import ensure_aware_utc
from storno_security.errors import CorruptRecordError, StoreError, StoreUnavailableError
from storno_security.mfa.storage import StoredChallenge, StoredStepUp
from storno_security.stores.redis._base import _call

__all__ = ["RedisMfaChallengeStore", "RedisStepUpStore", "RedisTotpReplayStore"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_MILLISECOND = timedelta(milliseconds=1)

# KEYS[1]: the user's step key. ARGV[1]: the step; ARGV[2]: time-to-live in ms (positive).
_RECORD_STEP = """
local current = redis.call('GET', KEYS[1])
if current then
    local last = tonumber(current)
    if last == nil then
        return redis.error_reply('WRONGTYPE storno: the TOTP step key does not hold a step')
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
_CHALLENGE_LIVE = """
local v = redis.call('HMGET', KEYS[1], 'expires_at', 'failures', 'max_failures')
if not v[1] then
    return false
end
local expires_at, failures, limit = tonumber(v[1]), tonumber(v[2]), tonumber(v[3])
if expires_at == nil or failures == nil or limit == nil then
    return redis.error_reply('WRONGTYPE storno: malformed challenge')
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

# ARGV[1]: user id; ARGV[2]: action; ARGV[3]: now (µs).
_CONSUME_GRANT = """
local v = redis.call('HMGET', KEYS[1], 'user_id', 'action', 'expires_at')
if not v[1] then
    return false
end
if v[1] ~= ARGV[1] or v[2] ~= ARGV[2] then
    return false
end
local expires_at = tonumber(v[3])
if expires_at == nil then
    return redis.error_reply('WRONGTYPE storno: malformed step-up token')
end
if expires_at <= tonumber(ARGV[3]) then
    return false
end
local record = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return record
"""


def _micros(value: datetime) -> int:
    return (ensure_aware_utc(value) - _EPOCH) // _MICROSECOND


def _ttl_ms(start: datetime, end: datetime) -> int:
    return -(-(ensure_aware_utc(end) - ensure_aware_utc(start)) // _MILLISECOND)  # ceiling


def _text(value: object, reason: str) -> str:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptRecordError(reason=reason) from None
    if not isinstance(value, str) or not value:
        raise CorruptRecordError(reason=reason)
    return value


def _int(value: object, reason: str) -> int:
    text = _text(value, reason)
    if not text.isascii() or not text.lstrip("-").isdigit():
        raise CorruptRecordError(reason=reason)
    return int(text)


def _time(value: object) -> datetime:
    try:
        return _EPOCH + _int(value, "bad_datetime") * _MICROSECOND
    except OverflowError:
        raise CorruptRecordError(reason="bad_datetime") from None


def _fields(reply: object) -> dict[str, object]:
    if not isinstance(reply, list) or len(reply) % 2:
        raise StoreUnavailableError("unexpected reply from Redis", reason="bad_reply")
    return {_text(reply[i], "bad_field"): reply[i + 1] for i in range(0, len(reply), 2)}


def _check_key(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return value


class _RedisStore:
    def __init__(self, client: redis.Redis[Any], *, prefix: str = "storno:") -> None:
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
        self._client = client
        self._prefix = prefix

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prefix={self._prefix!r})"


class RedisTotpReplayStore(_RedisStore):
    """The last accepted TOTP step of each user, in Redis.

    Args:
        client: a synchronous redis-py client (``decode_responses`` either way).
        prefix: prepended to every key.

    Raises:
        TypeError: ``prefix`` is not a str.
    """

    def __init__(self, client: redis.Redis[Any], *, prefix: str = "storno:") -> None:
        super().__init__(client, prefix=prefix)
        self._record = client.register_script(_RECORD_STEP)

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
        key = f"{self._prefix}mfa:totp:{_check_key('user_id', user_id)}"
        if isinstance(step, bool) or not isinstance(step, int):
            raise TypeError("step must be an int")
        if step < 0:
            raise ValueError("step must not be negative")
        ttl = max(_ttl_ms(now, until), 1)
        return bool(_call(lambda: self._record(keys=[key], args=[step, ttl])) == 1)

    def purge_expired(self, *, now: datetime) -> int:
        """Return 0: Redis forgets the records by itself when their window ends.

        Raises:
            TypeError: ``now`` is not a datetime.
            ValueError: ``now`` is naive.
        """
        ensure_aware_utc(now)
        return 0


class RedisMfaChallengeStore(_RedisStore):
    """MFA login challenges in Redis hashes.

    Args:
        client: a synchronous redis-py client (``decode_responses`` either way).
        prefix: prepended to every key.

    Raises:
        TypeError: ``prefix`` is not a str.
    """

    def __init__(self, client: redis.Redis[Any], *, prefix: str = "storno:") -> None:
        super().__init__(client, prefix=prefix)
        self._create = client.register_script(_CREATE)
        self._fail = client.register_script(_RECORD_FAILURE)
        self._consume = client.register_script(_CONSUME_CHALLENGE)

    def _key(self, token_hash: str) -> str:
        return f"{self._prefix}mfa:challenge:{_check_key('token_hash', token_hash)}"

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
        ttl = _ttl_ms(challenge.created_at, challenge.expires_at)
        if ttl <= 0:
            return
        args: list[str | int] = [
            ttl,
            "user_id",
            challenge.user_id,
            "methods",
            ",".join(challenge.methods),
            "created_at",
            _micros(challenge.created_at),
            "expires_at",
            _micros(challenge.expires_at),
            "failures",
            challenge.failures,
            "max_failures",
            challenge.max_failures,
        ]
        key = self._key(challenge.token_hash)
        if _call(lambda: self._create(keys=[key], args=args)) != 1:
            raise StoreError("challenge token hash exists already", reason="duplicate")

    def _challenge(self, token_hash: str, fields: dict[str, object]) -> StoredChallenge:
        try:
            return StoredChallenge(
                token_hash=token_hash,
                user_id=_text(fields["user_id"], "bad_user_id"),
                methods=tuple(_text(fields["methods"], "bad_methods").split(",")),
                created_at=_time(fields["created_at"]),
                expires_at=_time(fields["expires_at"]),
                max_failures=_int(fields["max_failures"], "bad_count"),
                failures=_int(fields["failures"], "bad_count"),
            )
        except KeyError:
            raise CorruptRecordError(reason="missing_field") from None

    def get_challenge(self, token_hash: str, *, now: datetime) -> StoredChallenge | None:
        """Return the challenge if it is live (one ``HGETALL``), else ``None``.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``now`` is naive.
            StoreUnavailableError: Redis could not be reached or failed the command.
            CorruptRecordError: the record is malformed.
        """
        key = self._key(token_hash)
        now = ensure_aware_utc(now)
        reply = _call(lambda: self._client.hgetall(key))
        if not isinstance(reply, dict):
            raise StoreUnavailableError("unexpected reply from Redis", reason="bad_reply")
        if not reply:
            return None
        fields = {_text(k, "bad_field"): v for k, v in reply.items()}
        challenge = self._challenge(token_hash, fields)
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
        key = self._key(token_hash)
        micros = _micros(now)
        reply = _call(lambda: self._fail(keys=[key], args=[micros]))
        if reply is None:
            return None
        if isinstance(reply, bool) or not isinstance(reply, int):
            raise StoreUnavailableError("unexpected reply from Redis", reason="bad_reply")
        return reply

    def consume_challenge(self, token_hash: str, *, now: datetime) -> StoredChallenge | None:
        """End a live challenge in one Lua script (read and ``DEL``).

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``now`` is naive.
            StoreUnavailableError: Redis could not be reached or failed the script.
            CorruptRecordError: the record is malformed.
        """
        key = self._key(token_hash)
        micros = _micros(now)
        reply = _call(lambda: self._consume(keys=[key], args=[micros]))
        if reply is None:
            return None
        return self._challenge(token_hash, _fields(reply))

    def purge_expired(self, *, now: datetime) -> int:
        """Return 0: Redis forgets challenges by itself when they expire.

        Raises:
            TypeError: ``now`` is not a datetime.
            ValueError: ``now`` is naive.
        """
        ensure_aware_utc(now)
        return 0


class RedisStepUpStore(_RedisStore):
    """Step-up verification tokens in Redis hashes.

    Args:
        client: a synchronous redis-py client (``decode_responses`` either way).
        prefix: prepended to every key.

    Raises:
        TypeError: ``prefix`` is not a str.
    """

    def __init__(self, client: redis.Redis[Any], *, prefix: str = "storno:") -> None:
        super().__init__(client, prefix=prefix)
        self._create = client.register_script(_CREATE)
        self._consume = client.register_script(_CONSUME_GRANT)

    def _key(self, token_hash: str) -> str:
        return f"{self._prefix}mfa:stepup:{_check_key('token_hash', token_hash)}"

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
        ttl = _ttl_ms(grant.created_at, grant.expires_at)
        if ttl <= 0:
            return
        args: list[str | int] = [
            ttl,
            "user_id",
            grant.user_id,
            "action",
            grant.action,
            "method",
            grant.method,
            "created_at",
            _micros(grant.created_at),
            "expires_at",
            _micros(grant.expires_at),
        ]
        key = self._key(grant.token_hash)
        if _call(lambda: self._create(keys=[key], args=args)) != 1:
            raise StoreError("step-up token hash exists already", reason="duplicate")

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
        key = self._key(token_hash)
        args = [_check_key("user_id", user_id), _check_key("action", action), _micros(now)]
        reply = _call(lambda: self._consume(keys=[key], args=args))
        if reply is None:
            return None
        fields = _fields(reply)
        try:
            return StoredStepUp(
                token_hash=token_hash,
                user_id=_text(fields["user_id"], "bad_user_id"),
                action=_text(fields["action"], "bad_action"),
                method=_text(fields["method"], "bad_method"),
                created_at=_time(fields["created_at"]),
                expires_at=_time(fields["expires_at"]),
            )
        except KeyError:
            raise CorruptRecordError(reason="missing_field") from None

    def purge_expired(self, *, now: datetime) -> int:
        """Return 0: Redis forgets tokens by itself when they expire.

        Raises:
            TypeError: ``now`` is not a datetime.
            ValueError: ``now`` is naive.
        """
        ensure_aware_utc(now)
        return 0
