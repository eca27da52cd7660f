"""Fixtures of the rate-limit tests: each storage (memory, Redis) with a key prefix per test."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from storno_security.clock import FrozenClock
from storno_security.ratelimit import RateLimiter, RateLimitStorage
from storno_security.stores.memory import MemoryRateLimitStorage

STORAGES = ("memory", "redis")


def make_storage(kind: str, request: pytest.FixtureRequest) -> RateLimitStorage:
    """A fresh storage of ``kind``; Redis keys under this run's prefix plus a per-test part."""
    if kind == "memory":
        return MemoryRateLimitStorage()
    from storno_security.stores.redis import RedisRateLimitStorage

    client: Any = request.getfixturevalue("redis_client")
    prefix: str = request.getfixturevalue("redis_prefix")
    return RedisRateLimitStorage(client, prefix=f"{prefix}rl{secrets.token_hex(4)}:")


@pytest.fixture(params=STORAGES)
def storage(request: pytest.FixtureRequest) -> RateLimitStorage:
    """Each rate-limit storage in turn."""
    return make_storage(str(request.param), request)


@pytest.fixture
def limiter(storage: RateLimitStorage, clock: FrozenClock) -> RateLimiter:
    """A limiter with the spec's policies over each storage, on the frozen clock."""
    return RateLimiter(storage, clock=clock)
