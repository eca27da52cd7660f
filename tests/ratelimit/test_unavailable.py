"""RL-4: storage by URI, and what happens when Redis is down.

A closed port and a Redis server of our own, stopped with ``SHUTDOWN NOSAVE`` in the middle of a
test: authentication policies fail closed with ``RateLimitUnavailableError`` (a server answers
503), the others follow their ``fail_open`` setting.

The server comes from :func:`tests.ratelimit.conftest.redis_server`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storno_security.clock import FrozenClock
from storno_security.errors import (
    CorruptRecordError,
    RateLimitExceededError,
    RateLimitUnavailableError,
    StoreUnavailableError,
)
from storno_security.ratelimit import (
    RateLimiter,
    RateLimitStatus,
    spec_policies,
)
from storno_security.stores import storage_from_uri
from storno_security.stores.memory import MemoryRateLimitStorage
from storno_security.stores.redis import RedisRateLimitStorage
from tests.conftest import REDIS_URL
from tests.ratelimit.conftest import free_port, redis_server, shutdown_redis

IP = "203.0.113.7"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """A throw-away redis-server on a free port; stopped and reaped at the end whatever happens."""
    with redis_server(tmp_path) as started:
        yield started


def _limiter(uri: str, *, api_fail_open: bool, prefix: str = "storno-test:") -> RateLimiter:
    return RateLimiter(
        storage_from_uri(uri, prefix=prefix, connect_timeout=0.5, timeout=0.5),
        clock=FrozenClock(),
        policies=spec_policies(api_fail_open=api_fail_open),
    )


def _assert_down(limiter: RateLimiter, *, api_fail_open: bool) -> None:
    for policy in ("login", "register", "mfa_verify", "forgot_password", "license_validation"):
        with pytest.raises(RateLimitUnavailableError) as failed:
            limiter.hit(policy, IP)
        assert failed.value.policy == policy
        assert isinstance(failed.value, StoreUnavailableError)
        assert isinstance(failed.value.__cause__, StoreUnavailableError)
    for policy, capacity in (("api_unauthenticated", 10_000), ("api_authenticated", 50_000)):
        if api_fail_open:
            assert limiter.hit(policy, IP) == RateLimitStatus(
                policy=policy,
                limit=capacity,
                remaining=capacity,
                reset=0,
                retry_after=0,
                degraded=True,
            )
        else:
            with pytest.raises(RateLimitUnavailableError):
                limiter.hit(policy, IP)


@pytest.mark.spec("RL-4")
@pytest.mark.parametrize("api_fail_open", [False, True])
def test_closed_port_fails_auth_closed_and_the_rest_per_policy(api_fail_open: bool) -> None:
    limiter = _limiter(f"redis://127.0.0.1:{free_port()}/0", api_fail_open=api_fail_open)
    _assert_down(limiter, api_fail_open=api_fail_open)


@pytest.mark.spec("RL-4")
@pytest.mark.parametrize("api_fail_open", [False, True])
def test_redis_stopped_mid_run_fails_auth_closed_and_the_rest_per_policy(
    own_redis: tuple[int, subprocess.Popen[str]], api_fail_open: bool
) -> None:
    port, process = own_redis
    limiter = _limiter(f"redis://127.0.0.1:{port}/0", api_fail_open=api_fail_open)
    for _ in range(5):
        limiter.hit("login", IP)
    with pytest.raises(RateLimitExceededError):
        limiter.hit("login", IP)
    assert limiter.hit("api_unauthenticated", IP).remaining == 9_999

    shutdown_redis(port)
    assert process.wait(timeout=10) == 0
    _assert_down(limiter, api_fail_open=api_fail_open)


@pytest.mark.spec("RL-4")
def test_a_key_holding_something_else_fails_closed(
    redis_client: Any, redis_prefix: str, clock: FrozenClock
) -> None:
    prefix = f"{redis_prefix}corrupt:"
    storage = RedisRateLimitStorage(redis_client, prefix=prefix)
    limiter = RateLimiter(storage, clock=clock, policies=spec_policies(api_fail_open=True))
    redis_client.set(f"{prefix}rl:sw:login:{IP}", "x")
    redis_client.rpush(f"{prefix}rl:sw:register:{IP}", "not-a-time")
    redis_client.hset(f"{prefix}rl:tb:api_unauthenticated:{IP}", mapping={"l": "x", "t": "1"})
    for policy in ("login", "register"):
        with pytest.raises(RateLimitUnavailableError) as failed:
            limiter.hit(policy, IP)
        assert isinstance(failed.value.__cause__, CorruptRecordError)
    assert limiter.hit("api_unauthenticated", IP).degraded


def test_storage_from_uri_builds_memory_and_redis(redis_client: Any, redis_prefix: str) -> None:
    assert isinstance(storage_from_uri("memory://"), MemoryRateLimitStorage)
    storage = storage_from_uri(REDIS_URL, prefix=f"{redis_prefix}uri:")
    assert isinstance(storage, RedisRateLimitStorage)
    limiter = RateLimiter(storage, clock=FrozenClock())
    assert limiter.hit("login", IP).remaining == 4
    assert redis_client.llen(f"{redis_prefix}uri:rl:sw:login:{IP}") == 1
    storage.client.close()
    memory = RateLimiter(storage_from_uri("memory://"), clock=FrozenClock())
    assert "MemoryRateLimitStorage" in repr(memory)


@pytest.mark.parametrize(
    "uri",
    ["memcached://localhost:11211", "mongodb://localhost", "async+redis://localhost", "nope"],
)
def test_storage_from_uri_refuses_other_schemes(uri: str) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        storage_from_uri(uri)


def test_storage_from_uri_refuses_bad_types() -> None:
    with pytest.raises(TypeError):
        storage_from_uri(b"memory://")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        RedisRateLimitStorage(object(), prefix=1)  # type: ignore[arg-type]


def test_storages_refuse_keys_that_are_not_text(redis_client: Any, redis_prefix: str) -> None:
    for storage in (
        MemoryRateLimitStorage(),
        RedisRateLimitStorage(redis_client, prefix=redis_prefix),
    ):
        with pytest.raises(TypeError):
            storage.acquire_window(b"k", limit=1, window_ms=1_000, now_ms=0)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            storage.acquire_bucket(
                1,  # type: ignore[arg-type]
                capacity=1,
                refill_amount=1,
                refill_period_ms=1,
                now_ms=0,
            )
