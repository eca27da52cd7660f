"""The Redis stores' scripts against keys they did not write, integer limits and clock skew.

A key holding the wrong type, or a value that is not what a store writes, must raise
:class:`CorruptRecordError` (never crash, never pass silently, never be overwritten), whatever
Lua's ``tonumber`` would make of it (it reads ``"nan"``, ``"inf"``, ``"0x10"``, ``" 5"`` and
``"1e3"`` as numbers).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storno_security.errors import CorruptRecordError, StoreUnavailableError
from storno_security.mfa.storage import StoredChallenge, StoredStepUp
from storno_security.stores.redis import (
    RedisMfaChallengeStore,
    RedisRateLimitStorage,
    RedisSessionStateStore,
    RedisStepUpStore,
    RedisTotpReplayStore,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
# "9" * 400 is inf to tonumber; 19 digits may leave Redis' 64-bit range
NOT_INTEGERS = ["nan", "-nan", "inf", "-inf", "0x10", " 5", "1e3", "5.0", "--5", "", "x"]
NOT_INTEGERS += ["9" * 400, "-" + "9" * 400, "9" * 19]
MAX_INT64 = 2**63 - 1


def _name() -> str:
    return secrets.token_hex(8)


# -- rate limits -------------------------------------------------------------------------------


@pytest.fixture
def rl(redis_client: Any, redis_prefix: str) -> RedisRateLimitStorage:
    return RedisRateLimitStorage(redis_client, prefix=redis_prefix)


# past the bounds (2**50 units in a bucket, 2**53 for times) floor_div's correction loops could
# spin forever inside Redis; a hash of other fields is not a bucket
_BAD_LOGS = [[str(NOW_MS - 10), v] for v in NOT_INTEGERS] + [[str(2**53 + 1)], ["-" + "9" * 18]]
_BAD_BUCKETS = [{"l": v, "t": str(NOW_MS)} for v in NOT_INTEGERS]
_BAD_BUCKETS += [{"l": "0", "t": v} for v in NOT_INTEGERS]
_BAD_BUCKETS += [{"l": v, "t": "0"} for v in ("-1", str(2**50 + 1), "9" * 18)]
_BAD_BUCKETS += [{"l": "0", "t": v} for v in (str(2**53 + 1), "-" + "9" * 18)]
_BAD_BUCKETS += [{"someone": "else"}]


def _corrupt_and_untouched(client: Any, key: str, call: Callable[[], object]) -> None:
    before = client.dump(key)
    with pytest.raises(CorruptRecordError):
        call()
    assert client.dump(key) == before


@pytest.mark.parametrize("entries", _BAD_LOGS)
def test_window_entry_that_is_not_a_safe_integer_is_corrupt(
    rl: RedisRateLimitStorage, redis_client: Any, redis_prefix: str, entries: list[str]
) -> None:
    key = _name()
    redis_client.rpush(redis_prefix + key, *entries)
    _corrupt_and_untouched(
        redis_client,
        redis_prefix + key,
        lambda: rl.acquire_window(key, limit=5, window_ms=60_000, now_ms=NOW_MS),
    )


@pytest.mark.parametrize("state", _BAD_BUCKETS)
def test_bucket_state_that_is_not_safe_integers_is_corrupt(
    rl: RedisRateLimitStorage, redis_client: Any, redis_prefix: str, state: dict[str, str]
) -> None:
    key = _name()
    redis_client.hset(redis_prefix + key, mapping=state)
    _corrupt_and_untouched(
        redis_client,
        redis_prefix + key,
        lambda: rl.acquire_bucket(
            key, capacity=3, refill_amount=1, refill_period_ms=1000, now_ms=NOW_MS
        ),
    )


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"refill_amount": 0}, ValueError),  # a zero rate: ceil_div would divide by zero
        ({"capacity": 2**40, "refill_period_ms": 2**11}, ValueError),  # 2**51 units
        ({"refill_period_ms": 0}, ValueError),
        ({"capacity": True}, TypeError),
        ({"now_ms": 2**53}, ValueError),
        ({"now_ms": 1.5}, TypeError),
    ],
)
def test_bucket_arguments_beyond_exact_arithmetic_are_refused_before_redis(
    redis_prefix: str, args: dict[str, Any], error: type[Exception]
) -> None:
    # a client of no server: a round trip would raise StoreUnavailableError
    storage = RedisRateLimitStorage(_NOWHERE, prefix=redis_prefix)
    values: dict[str, Any] = {
        "capacity": 3,
        "refill_amount": 1,
        "refill_period_ms": 1000,
        "now_ms": NOW_MS,
    }
    values.update(args)
    with pytest.raises(error):
        storage.acquire_bucket(_name(), **values)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"limit": 0}, ValueError),
        ({"window_ms": 0}, ValueError),
        ({"window_ms": 2**53}, ValueError),
        ({"now_ms": -(2**53) - 1}, ValueError),
        ({"limit": "5"}, TypeError),
    ],
)
def test_window_arguments_out_of_range_are_refused_before_redis(
    redis_prefix: str, args: dict[str, Any], error: type[Exception]
) -> None:
    storage = RedisRateLimitStorage(_NOWHERE, prefix=redis_prefix)
    values: dict[str, Any] = {"limit": 5, "window_ms": 60_000, "now_ms": NOW_MS}
    values.update(args)
    with pytest.raises(error):
        storage.acquire_window(_name(), **values)


_NOWHERE: Any = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)

_STORED = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(alphabet="0123456789-+.eEinfaxX ", max_size=30),
    st.sampled_from(NOT_INTEGERS),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(level=_STORED, last=_STORED, entries=st.lists(_STORED, max_size=6))
def test_any_stored_value_gives_an_answer_or_corrupt_never_a_hang(
    rl: RedisRateLimitStorage,
    redis_client: Any,
    redis_prefix: str,
    level: str,
    last: str,
    entries: list[str],
) -> None:
    bucket, log = _name(), _name()
    redis_client.hset(redis_prefix + bucket, mapping={"l": level, "t": last})
    if entries:
        redis_client.rpush(redis_prefix + log, *entries)
    for call in (
        lambda: rl.acquire_bucket(
            bucket, capacity=3, refill_amount=1, refill_period_ms=1000, now_ms=NOW_MS
        ),
        lambda: rl.acquire_window(log, limit=5, window_ms=60_000, now_ms=NOW_MS),
    ):
        try:
            call()
        except CorruptRecordError:
            pass
        except StoreUnavailableError:  # a script that never ends: free the server, then fail
            redis_client.script_kill()
            pytest.fail("a rate-limit script did not finish")


@pytest.mark.parametrize("kind", ["string", "hash", "set"])
def test_window_and_bucket_keys_of_the_wrong_type_are_corrupt(
    rl: RedisRateLimitStorage, redis_client: Any, redis_prefix: str, kind: str
) -> None:
    key = _name()
    full = redis_prefix + key
    {
        "string": lambda: redis_client.set(full, "1"),
        "hash": lambda: redis_client.hset(full, "a", "1"),
        "set": lambda: redis_client.sadd(full, "1"),
    }[kind]()
    with pytest.raises(CorruptRecordError):
        rl.acquire_window(key, limit=5, window_ms=60_000, now_ms=NOW_MS)
    if kind != "hash":
        with pytest.raises(CorruptRecordError):
            rl.acquire_bucket(
                key, capacity=3, refill_amount=1, refill_period_ms=1000, now_ms=NOW_MS
            )


def test_window_clock_skew_never_moves_a_log_backwards(rl: RedisRateLimitStorage) -> None:
    key = _name()
    ahead, behind = NOW_MS + 5_000, NOW_MS
    assert rl.acquire_window(key, limit=2, window_ms=10_000, now_ms=ahead).allowed
    late = rl.acquire_window(key, limit=2, window_ms=10_000, now_ms=behind)
    # served at the log's newest time: its entry lives until ahead + window, seen from behind
    assert late.allowed
    assert late.reset_after_ms == 15_000
    refused = rl.acquire_window(key, limit=2, window_ms=10_000, now_ms=behind)
    assert not refused.allowed
    assert refused.retry_after_ms == 15_000


def test_bucket_clock_skew_refills_nothing_backwards(rl: RedisRateLimitStorage) -> None:
    key = _name()
    args = {"capacity": 1, "refill_amount": 1, "refill_period_ms": 1000}
    assert rl.acquire_bucket(key, **args, now_ms=NOW_MS + 3_000).allowed
    refused = rl.acquire_bucket(key, **args, now_ms=NOW_MS)
    assert not refused.allowed
    assert refused.retry_after_ms == 4_000


# -- TOTP replay guard -------------------------------------------------------------------------


@pytest.mark.parametrize("value", NOT_INTEGERS)
def test_totp_step_that_is_not_an_integer_is_corrupt(
    redis_client: Any, redis_prefix: str, value: str
) -> None:
    user = _name()
    key = f"{redis_prefix}mfa:totp:{user}"
    redis_client.set(key, value)
    with pytest.raises(CorruptRecordError):
        RedisTotpReplayStore(redis_client, prefix=redis_prefix).record_step(
            user, 10, now=NOW, until=NOW + timedelta(minutes=2)
        )
    assert redis_client.get(key) == value.encode()


def test_totp_step_key_of_the_wrong_type_is_corrupt(redis_client: Any, redis_prefix: str) -> None:
    user = _name()
    redis_client.hset(f"{redis_prefix}mfa:totp:{user}", "a", "1")
    with pytest.raises(CorruptRecordError):
        RedisTotpReplayStore(redis_client, prefix=redis_prefix).record_step(
            user, 10, now=NOW, until=NOW + timedelta(minutes=2)
        )


# -- MFA challenges and step-up tokens ---------------------------------------------------------


def _challenge(token_hash: str, **changes: Any) -> StoredChallenge:
    values: dict[str, Any] = {
        "token_hash": token_hash,
        "user_id": "user-1",
        "methods": ("totp",),
        "created_at": NOW,
        "expires_at": NOW + timedelta(minutes=5),
        "max_failures": 5,
    }
    values.update(changes)
    return StoredChallenge(**values)


# The records' field names: number (failures), limit (max_failures), subject, tag (action).
@pytest.mark.parametrize("missing", ["expires_at", "number", "limit"])
def test_challenge_missing_a_field_is_corrupt_not_absent(
    redis_client: Any, redis_prefix: str, missing: str
) -> None:
    store = RedisMfaChallengeStore(redis_client, prefix=redis_prefix)
    token_hash = _name()
    store.create_challenge(_challenge(token_hash))
    redis_client.hdel(f"{redis_prefix}mfa:challenge:{token_hash}", missing)
    with pytest.raises(CorruptRecordError):
        store.record_failure(token_hash, now=NOW)
    with pytest.raises(CorruptRecordError):
        store.consume_challenge(token_hash, now=NOW)
    with pytest.raises(CorruptRecordError):
        store.get_challenge(token_hash, now=NOW)


@pytest.mark.parametrize("value", NOT_INTEGERS)
def test_challenge_times_and_counts_must_be_integers(
    redis_client: Any, redis_prefix: str, value: str
) -> None:
    store = RedisMfaChallengeStore(redis_client, prefix=redis_prefix)
    for field in ("expires_at", "number", "limit"):
        token_hash = _name()
        store.create_challenge(_challenge(token_hash))
        redis_client.hset(f"{redis_prefix}mfa:challenge:{token_hash}", field, value)
        with pytest.raises(CorruptRecordError):
            store.record_failure(token_hash, now=NOW)
        with pytest.raises(CorruptRecordError):
            store.get_challenge(token_hash, now=NOW)
        with pytest.raises(CorruptRecordError):
            store.consume_challenge(token_hash, now=NOW)


def test_challenge_failure_count_overflow_is_corrupt(redis_client: Any, redis_prefix: str) -> None:
    store = RedisMfaChallengeStore(redis_client, prefix=redis_prefix)
    token_hash = _name()
    store.create_challenge(_challenge(token_hash))
    redis_client.hset(
        f"{redis_prefix}mfa:challenge:{token_hash}",
        mapping={"number": str(MAX_INT64), "limit": "9" * 19},
    )
    with pytest.raises(CorruptRecordError):
        store.record_failure(token_hash, now=NOW)


def test_challenge_key_of_the_wrong_type_is_corrupt(redis_client: Any, redis_prefix: str) -> None:
    store = RedisMfaChallengeStore(redis_client, prefix=redis_prefix)
    token_hash = _name()
    redis_client.set(f"{redis_prefix}mfa:challenge:{token_hash}", "x")
    for call in (store.record_failure, store.consume_challenge, store.get_challenge):
        with pytest.raises(CorruptRecordError):
            call(token_hash, now=NOW)


@pytest.mark.parametrize("missing", ["subject", "tag", "expires_at"])
def test_step_up_missing_a_field_is_corrupt_not_absent(
    redis_client: Any, redis_prefix: str, missing: str
) -> None:
    store = RedisStepUpStore(redis_client, prefix=redis_prefix)
    token_hash = _name()
    store.create_grant(
        StoredStepUp(
            token_hash=token_hash,
            user_id="user-1",
            action="delete",
            method="totp",
            created_at=NOW,
            expires_at=NOW + timedelta(minutes=5),
        )
    )
    redis_client.hdel(f"{redis_prefix}mfa:stepup:{token_hash}", missing)
    with pytest.raises(CorruptRecordError):
        store.consume_grant(token_hash, user_id="user-1", action="delete", now=NOW)


def test_step_up_key_of_the_wrong_type_is_corrupt(redis_client: Any, redis_prefix: str) -> None:
    store = RedisStepUpStore(redis_client, prefix=redis_prefix)
    token_hash = _name()
    redis_client.rpush(f"{redis_prefix}mfa:stepup:{token_hash}", "x")
    with pytest.raises(CorruptRecordError):
        store.consume_grant(token_hash, user_id="user-1", action="delete", now=NOW)


# -- session state -----------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["epoch", "revoked"])
def test_session_state_key_of_the_wrong_type_is_corrupt(
    redis_client: Any, redis_prefix: str, which: str
) -> None:
    store = RedisSessionStateStore(redis_client, prefix=redis_prefix)
    user, session = _name(), _name()
    key = f"{redis_prefix}epoch:{user}" if which == "epoch" else f"{redis_prefix}revoked:{session}"
    redis_client.hset(key, "a", "1")
    with pytest.raises(CorruptRecordError):
        store.session_state(user_id=user, session_id=session)


def test_revoking_onto_a_key_of_the_wrong_type_is_corrupt(
    redis_client: Any, redis_prefix: str
) -> None:
    store = RedisSessionStateStore(redis_client, prefix=redis_prefix)
    session = _name()
    key = f"{redis_prefix}revoked:{session}"
    redis_client.hset(key, "a", "1")
    redis_client.pexpire(key, 1_000)
    with pytest.raises(CorruptRecordError):
        store.revoke_session(session, now=NOW, until=NOW + timedelta(minutes=5))
    assert redis_client.type(key) == b"hash"


def test_epoch_overflow_is_corrupt(redis_client: Any, redis_prefix: str) -> None:
    store = RedisSessionStateStore(redis_client, prefix=redis_prefix)
    user = _name()
    redis_client.hset(
        f"{redis_prefix}epoch:{user}",
        mapping={
            "number": str(MAX_INT64),
            "created_at": "0",
            "data": "",
            "shape": "subject",
            "subject": user,
        },
    )
    with pytest.raises(CorruptRecordError):
        store.bump_epoch(user)
    assert store.current_epoch(user) == MAX_INT64


def test_revoke_ttl_comes_from_the_callers_times(redis_client: Any, redis_prefix: str) -> None:
    store = RedisSessionStateStore(redis_client, prefix=redis_prefix)
    session = _name()
    # times far from the Redis host's clock: only until - now matters
    past = datetime(2001, 1, 1, tzinfo=UTC)
    store.revoke_session(session, now=past, until=past + timedelta(seconds=90, microseconds=1))
    ttl = redis_client.pttl(f"{redis_prefix}revoked:{session}")
    assert 89_000 < ttl <= 90_001
    assert store.session_state(user_id=_name(), session_id=session).revoked
