"""The rate-limit hit in both modes: the suite of ``tests/ratelimit/test_limiter.py`` runs again
with :class:`AsyncRateLimiter` (and its tests that build their own limiter, over the async
storages), on memory and Redis; then sync and async callers share one count, and a Redis that
is down fails closed for authentication policies (RL-4) in the async mode too.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storno_security.aio import (
    AsyncRateLimiter,
    InlineRateLimitStorage,
    OffloadedRateLimitStorage,
)
from storno_security.clock import FrozenClock
from storno_security.errors import RateLimitExceededError
from storno_security.ratelimit import RateLimiter, spec_policies
from storno_security.stores.memory import MemoryRateLimitStorage
from tests.aio.conftest import Synced, mode_params, require_async_redis
from tests.ratelimit import test_limiter as suite
from tests.ratelimit import test_unavailable
from tests.ratelimit.conftest import free_port, redis_server, shutdown_redis

IP = "203.0.113.7"


def _pair(kind: str, request: pytest.FixtureRequest) -> tuple[Any, Any]:
    """A synchronous storage and the async storage on the same counts."""
    if kind == "memory":
        memory = MemoryRateLimitStorage()
        return memory, InlineRateLimitStorage(memory)
    if kind == "offloaded":  # any storage, its checks in the io lane
        memory = MemoryRateLimitStorage()
        return memory, OffloadedRateLimitStorage(memory, request.getfixturevalue("offloader"))
    from storno_security.aio.redis import AsyncRedisRateLimitStorage
    from storno_security.stores.redis import RedisRateLimitStorage

    prefix = f"{request.getfixturevalue('redis_prefix')}rl{secrets.token_hex(4)}:"
    client = request.getfixturevalue("redis_client")
    return (
        RedisRateLimitStorage(client, prefix=prefix),
        AsyncRedisRateLimitStorage(require_async_redis(request), prefix=prefix),
    )


WITH_OFFLOADED = [*mode_params(("memory", "redis")), pytest.param(("offloaded", "async"))]


@pytest.fixture(params=WITH_OFFLOADED)
def storage(request: pytest.FixtureRequest) -> Any:
    """Each storage, then its async form seen synchronously."""
    kind, mode = request.param
    sync, async_ = _pair(kind, request)
    return sync if mode == "sync" else Synced(async_, request.getfixturevalue("loop_thread"))


@pytest.fixture(params=WITH_OFFLOADED)
def limiter(request: pytest.FixtureRequest, clock: FrozenClock) -> Any:
    """The spec's policies over each storage: the synchronous limiter, then the async one."""
    kind, mode = request.param
    sync, async_ = _pair(kind, request)
    if mode == "sync":
        return RateLimiter(sync, clock=clock)
    return Synced(AsyncRateLimiter(async_, clock=clock), request.getfixturevalue("loop_thread"))


# The suite, unchanged.
for _name, _test in vars(suite).items():
    if _name.startswith("test_"):
        globals()[_name] = _test


@pytest.mark.spec("RL-1")
@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_sync_and_async_callers_share_one_count(
    kind: str, request: pytest.FixtureRequest, clock: FrozenClock, loop_thread: Any
) -> None:
    sync_storage, async_storage = _pair(kind, request)
    sync = RateLimiter(sync_storage, clock=clock)
    async_ = Synced(AsyncRateLimiter(async_storage, clock=clock), loop_thread)
    for limiter in (sync, async_, sync, async_, sync):
        limiter.hit("login", IP)
    for limiter in (sync, async_):
        with pytest.raises(RateLimitExceededError) as refused:
            limiter.hit("login", IP)
        assert refused.value.status.remaining == 0


def test_the_policies_are_checked_as_the_synchronous_limiter_checks_them(
    clock: FrozenClock,
) -> None:
    storage = InlineRateLimitStorage(MemoryRateLimitStorage())
    with pytest.raises(ValueError, match="at least one policy"):
        AsyncRateLimiter(storage, clock=clock, policies={})
    with pytest.raises(TypeError):
        AsyncRateLimiter(storage, clock=object(), policies=None)  # type: ignore[arg-type]
    assert sorted(AsyncRateLimiter(storage, clock=clock).policies) == sorted(
        RateLimiter(MemoryRateLimitStorage(), clock=clock).policies
    )


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """A throw-away redis-server on a free port; stopped and reaped at the end."""
    with redis_server(tmp_path) as started:
        yield started


def _async_limiter(loop_thread: Any, port: int, *, api_fail_open: bool) -> Any:
    import redis.asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    from storno_security.aio.redis import AsyncRedisRateLimitStorage

    async def make() -> Any:
        client = redis.asyncio.Redis(
            port=port,
            socket_connect_timeout=0.5,
            socket_timeout=0.5,
            retry=Retry(NoBackoff(), 1),
        )
        return AsyncRateLimiter(
            AsyncRedisRateLimitStorage(client, prefix="storno-test:"),
            clock=FrozenClock(),
            policies={p.name: p for p in spec_policies(api_fail_open=api_fail_open)},
        )

    return Synced(loop_thread.run(make()), loop_thread)


@pytest.mark.spec("RL-4")
@pytest.mark.parametrize("api_fail_open", [False, True])
def test_closed_port_fails_auth_closed_and_the_rest_per_policy(
    loop_thread: Any, api_fail_open: bool
) -> None:
    limiter = _async_limiter(loop_thread, free_port(), api_fail_open=api_fail_open)
    test_unavailable._assert_down(limiter, api_fail_open=api_fail_open)


@pytest.mark.spec("RL-4")
@pytest.mark.parametrize("api_fail_open", [False, True])
def test_redis_stopped_mid_run_fails_auth_closed_and_the_rest_per_policy(
    loop_thread: Any, own_redis: tuple[int, subprocess.Popen[str]], api_fail_open: bool
) -> None:
    port, process = own_redis
    limiter = _async_limiter(loop_thread, port, api_fail_open=api_fail_open)
    for _ in range(5):
        limiter.hit("login", IP)
    with pytest.raises(RateLimitExceededError):
        limiter.hit("login", IP)
    shutdown_redis(port)
    assert process.wait(timeout=10) == 0
    test_unavailable._assert_down(limiter, api_fail_open=api_fail_open)


def test_the_async_rate_limit_storages_and_limiter_name_what_they_wrap(
    offloader: Any, clock: FrozenClock
) -> None:
    memory = MemoryRateLimitStorage()
    inline = InlineRateLimitStorage(memory)
    assert repr(inline) == f"InlineRateLimitStorage({memory!r})"
    offloaded = OffloadedRateLimitStorage(memory, offloader)
    assert repr(offloaded) == f"OffloadedRateLimitStorage({memory!r})"
    limiter = AsyncRateLimiter(inline, clock=clock)
    assert repr(limiter) == f"AsyncRateLimiter({inline!r}, policies={sorted(limiter.policies)})"
