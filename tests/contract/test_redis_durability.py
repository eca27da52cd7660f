"""Review fixes of the Redis stores: a Redis that may evict keys is refused.

The session, TOTP-replay, MFA and passkey stores rely on Redis keeping each key until it
expires (session epochs for ever). Under a ``maxmemory-policy`` other than ``noeviction`` a full
Redis deletes them early: a replay guard (MFA-2), a revoked-session marker (REF-3), under
``allkeys-*`` an epoch (REF-4). ``require_noeviction`` refuses such a server at start-up; under
``noeviction`` a flood of other keys is refused with OOM instead, and the security state stays.

Each test runs a redis-server of its own on a free port (``tests.ratelimit.conftest``), so it
can set ``maxmemory``, the policy and ACL users without touching the shared server.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from storno_security.errors import StoreError, StoreUnavailableError
from storno_security.stores.redis import (
    RedisPasskeyChallengeStore,
    RedisRateLimitStorage,
    RedisSessionStateStore,
    check_redis_safety,
    eviction_policy,
    require_noeviction,
)
from tests.ratelimit.conftest import free_port, redis_server

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EVICTING = ("allkeys-lru", "volatile-ttl", "volatile-lru", "allkeys-random", "volatile-lfu")


def _client(port: int, **options: Any) -> Any:
    import redis

    return redis.Redis(port=port, socket_timeout=5, **options)


def _limited_user(admin: Any, port: int, *denied: str) -> Any:
    """A client of an ACL user that may run every command but ``denied`` (as on a managed
    service that keeps ``CONFIG`` to itself)."""
    password = secrets.token_hex(8)
    admin.acl_setuser(
        "app",
        enabled=True,
        passwords=[f"+{password}"],
        commands=["+@all", *(f"-{command}" for command in denied)],
        keys=["*"],
    )
    return _client(port, username="app", password=password)


@pytest.mark.finding("internal review of the Redis stores")
@pytest.mark.spec("MFA-2")
@pytest.mark.spec("REF-3")
@pytest.mark.spec("REF-4")
@pytest.mark.parametrize("policy", EVICTING)
def test_a_redis_that_may_evict_is_refused(tmp_path: Path, policy: str) -> None:
    with redis_server(tmp_path, maxmemory="3mb", maxmemory_policy=policy) as (port, _):
        client = _client(port)
        try:
            assert eviction_policy(client) == policy
            problems = check_redis_safety(client)
            assert len(problems) == 1
            assert policy in problems[0]
            assert "noeviction" in problems[0]
            with pytest.raises(StoreError) as refused:
                require_noeviction(client)
            assert refused.value.reason == "eviction_policy"
            assert not isinstance(refused.value, StoreUnavailableError)
            for store in (
                RedisSessionStateStore(client),
                RedisPasskeyChallengeStore(client),
            ):
                with pytest.raises(StoreError) as refused:
                    store.require_noeviction()
                assert refused.value.reason == "eviction_policy"
            # allow_unknown is about a server that will not say, not one that says the wrong thing
            with pytest.raises(StoreError):
                require_noeviction(client, allow_unknown=True)
        finally:
            client.close()


def _flood(client: Any) -> int:
    """Rate-limit-style keys (short time-to-live) in batches until Redis refuses them for want
    of memory; the number of keys written."""
    import redis

    written = 0
    for batch in range(200):
        pipe = client.pipeline(transaction=False)
        for n in range(1_000):
            pipe.set(f"flood:rl:sw:login:ip{batch}-{n}", "x" * 64, px=60_000)
        replies = pipe.execute(raise_on_error=False)
        refused = [r for r in replies if isinstance(r, redis.ResponseError)]
        written += len(replies) - len(refused)
        if refused:
            assert "maxmemory" in str(refused[0])
            return written
    pytest.fail("memory never filled up: the test proves nothing")


@pytest.mark.finding("internal review of the Redis stores")
@pytest.mark.spec("REF-3")
@pytest.mark.spec("REF-4")
def test_under_noeviction_a_flood_is_refused_and_revocations_stay(tmp_path: Path) -> None:
    """The reviewer's attack on a ``noeviction`` server: rate-limit keys until memory is full.
    The flood's writes are refused; the revoked-session marker and the epoch survive, and a
    security write that Redis refuses fails closed."""
    with redis_server(tmp_path, maxmemory="3mb", maxmemory_policy="noeviction") as (port, _):
        client = _client(port)
        try:
            assert eviction_policy(client) == "noeviction"
            assert check_redis_safety(client) == []
            require_noeviction(client)
            sessions = RedisSessionStateStore(client, prefix="app:")
            sessions.require_noeviction()
            sessions.revoke_session("s-1", now=NOW, until=NOW + timedelta(minutes=15))
            assert sessions.bump_epoch("u-1") == 1

            assert _flood(client) > 1_000
            state = sessions.session_state(user_id="u-1", session_id="s-1")
            assert state.revoked
            assert state.epoch == 1
            # Memory moves after the flood's refusal (buffers freed, keys expiring): pin "full"
            # by lowering maxmemory below what is used, so each refusal below is certain.
            client.config_set("maxmemory", 1)
            with pytest.raises(StoreUnavailableError) as refused:
                sessions.bump_epoch("u-1")  # INCR under OOM: refused, nothing changed
            assert refused.value.reason == "refused"
            assert sessions.current_epoch("u-1") == 1
            # nor does the rate-limit script add keys past maxmemory: a new client's first log
            # is refused (the limiter fails closed or open per policy), so memory stays bounded
            limits = RedisRateLimitStorage(client, prefix="flood:")
            with pytest.raises(StoreUnavailableError) as refused:
                limits.acquire_window("new-client", limit=5, window_ms=60_000, now_ms=0)
            assert refused.value.reason == "refused"
            with pytest.raises(StoreUnavailableError):
                limits.acquire_bucket(
                    "new-client", capacity=5, refill_amount=1, refill_period_ms=1_000, now_ms=0
                )
        finally:
            client.close()


@pytest.mark.finding("internal review of the Redis stores")
@pytest.mark.spec("REF-4")
@pytest.mark.parametrize(("appendonly", "problems"), [("no", 1), ("yes", 0)])
def test_epochs_need_append_only_persistence(
    tmp_path: Path, appendonly: str, problems: int
) -> None:
    with redis_server(tmp_path, appendonly=appendonly) as (port, _):
        admin = _client(port)
        hidden = _limited_user(admin, port, "config")  # answered by INFO persistence
        try:
            for client in (admin, hidden):
                assert check_redis_safety(client) == []  # epochs not asked about
                found = check_redis_safety(client, epochs=True)
                assert len(found) == problems
                assert all("appendonly yes" in problem for problem in found)
        finally:
            hidden.close()
            admin.close()


@pytest.mark.finding("internal review of the Redis stores")
def test_a_server_that_hides_config_is_read_through_info(tmp_path: Path) -> None:
    with redis_server(tmp_path, maxmemory_policy="allkeys-lru") as (port, _):
        admin = _client(port)
        client = _limited_user(admin, port, "config")
        try:
            assert eviction_policy(client) == "allkeys-lru"
            with pytest.raises(StoreError) as refused:
                require_noeviction(client)
            assert refused.value.reason == "eviction_policy"
        finally:
            client.close()
            admin.close()


@pytest.mark.finding("internal review of the Redis stores")
def test_a_server_that_will_not_say_is_unknown(tmp_path: Path) -> None:
    with redis_server(tmp_path) as (port, _):
        admin = _client(port)
        client = _limited_user(admin, port, "config", "info")
        try:
            assert eviction_policy(client) is None
            problems = check_redis_safety(client)
            assert len(problems) == 1
            assert "unknown" in problems[0]
            assert len(check_redis_safety(client, epochs=True)) == 2
            with pytest.raises(StoreError) as refused:
                require_noeviction(client)
            assert refused.value.reason == "eviction_policy_unknown"
            with pytest.raises(StoreError):
                RedisSessionStateStore(client).require_noeviction()
            require_noeviction(client, allow_unknown=True)
            RedisSessionStateStore(client).require_noeviction(allow_unknown=True)
        finally:
            client.close()
            admin.close()


@pytest.mark.finding("internal review of the Redis stores")
def test_an_unreachable_redis_is_unavailable_not_unknown() -> None:
    client = _client(free_port())
    try:
        for check in (eviction_policy, check_redis_safety, require_noeviction):
            with pytest.raises(StoreUnavailableError):
                check(client)
    finally:
        client.close()


@pytest.mark.finding("internal review of the Redis stores")
def test_constructing_a_store_makes_no_round_trip() -> None:
    # the check is explicit: a store built on a dead client still constructs (I/O-free)
    client = _client(free_port())
    try:
        store = RedisSessionStateStore(client)
        with pytest.raises(StoreUnavailableError):
            store.require_noeviction()
    finally:
        client.close()
