"""RL-1 and RL-4 across processes: 2 processes x 10 threads hammer the login policy (5/min) of one
client through Redis, lined up by a multiprocessing barrier (the harness in
``tests/_concurrency.py``); exactly 5 get through per window.

Time is not slept through: each volley runs at a fixed instant given to a frozen clock, 0 s,
60 s (the first five have just left the window), 119.999 s (the second five are still in it)
and 120 s. The memory storage gets the same volleys from 20 threads of one process.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from storno_security.clock import FrozenClock
from storno_security.ratelimit import RateLimiter, RateLimitStorage, spec_policies
from storno_security.stores.memory import MemoryRateLimitStorage
from tests._concurrency import Outcome, StoreSpec, hammer, hammer_threads, per_round
from tests.conftest import REDIS_URL

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PROCESSES = 2
THREADS = 10
HITTERS = PROCESSES * THREADS
#: (instant of the volley in ms after NOW, how many of the 20 hits may pass)
VOLLEYS = ((0, 5), (60_000, 5), (119_999, 0), (120_000, 5))
IP = "203.0.113.50"


def _redis_storage(spec: StoreSpec, client: Any) -> RateLimitStorage:
    from storno_security.stores.redis import RedisRateLimitStorage

    return RedisRateLimitStorage(client, prefix=spec.prefix)


def _hit(storage: RateLimitStorage, volley: int) -> str:
    """One login hit at the volley's instant: "allowed" or the name of the error raised."""
    offset_ms, _ = VOLLEYS[volley]
    clock = FrozenClock(NOW + timedelta(milliseconds=offset_ms))
    limiter = RateLimiter(storage, clock=clock, policies=spec_policies())
    try:
        limiter.hit("login", IP)
    except Exception as exc:
        return type(exc).__name__
    return "allowed"


def _check(outcomes: list[Outcome]) -> None:
    for volley, (_, passing) in enumerate(VOLLEYS):
        counted = per_round(outcomes, volley)
        expected = {"allowed": passing, "RateLimitExceededError": HITTERS - passing}
        assert counted == {k: v for k, v in expected.items() if v}, (volley, counted)


@pytest.mark.spec("RL-1")
@pytest.mark.spec("RL-4")
@pytest.mark.slow
def test_exactly_five_logins_per_window_across_processes(
    redis_client: Any, redis_prefix: str
) -> None:
    prefix = f"{redis_prefix}conc{secrets.token_hex(4)}:"
    outcomes = hammer(
        StoreSpec("redis", REDIS_URL, prefix),
        _redis_storage,
        _hit,
        processes=PROCESSES,
        threads=THREADS,
        rounds=len(VOLLEYS),
    )
    _check(outcomes)
    # the log never holds more than the limit
    assert redis_client.llen(f"{prefix}rl:sw:login:{IP}") == 5


@pytest.mark.spec("RL-1")
def test_exactly_five_logins_per_window_across_threads_in_memory() -> None:
    outcomes = hammer_threads(MemoryRateLimitStorage(), _hit, threads=HITTERS, rounds=len(VOLLEYS))
    _check(outcomes)
