"""The storages against a model: any sequence of checks and clock moves gives the same answers
in memory and in Redis (the Lua scripts are the Python arithmetic, step for step), and the
answers keep the limits exactly (RL-1, RL-2, RL-4: Redis holds the same limits as memory)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storno_security.ratelimit import Acquisition, RateLimitStorage
from storno_security.stores.memory import MemoryRateLimitStorage

START_MS = 1_772_366_400_000  # 2026-03-01T12:00:00Z

# clock moves in ms: mostly small, sometimes large, sometimes backwards (another host's clock)
_STEPS = st.one_of(
    st.integers(0, 50),
    st.integers(0, 5_000),
    st.integers(0, 10**8),
    st.integers(-2_000, 0),
)

_FORWARD = st.one_of(st.integers(0, 50), st.integers(0, 5_000), st.integers(0, 10**8))

_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _redis_storage(request: pytest.FixtureRequest) -> RateLimitStorage:
    from storno_security.stores.redis import RedisRateLimitStorage

    client: Any = request.getfixturevalue("redis_client")
    prefix: str = request.getfixturevalue("redis_prefix")
    return RedisRateLimitStorage(client, prefix=f"{prefix}model:")


def _agreeing(
    request: pytest.FixtureRequest,
    acquire: Callable[[RateLimitStorage, str, int], Acquisition],
    steps: Iterable[int],
) -> list[tuple[int, Acquisition]]:
    """Run ``acquire(storage, key, now_ms)`` after each clock step on memory and on Redis,
    assert they agree, and return (time, answer)."""
    redis_storage = _redis_storage(request)
    memory = MemoryRateLimitStorage()
    key = f"k:{secrets.token_hex(8)}"
    now = START_MS
    answers = []
    for step in steps:
        now += step
        results = [acquire(s, key, now) for s in (memory, redis_storage)]
        assert results[0] == results[1], (now, results)
        answers.append((now, results[0]))
    return answers


def _window_results(
    request: pytest.FixtureRequest, limit: int, window_ms: int, steps: list[int]
) -> list[tuple[int, Acquisition]]:
    """Run the steps on memory and on Redis, assert they agree, and return (time, answer)."""

    def acquire(storage: RateLimitStorage, key: str, now: int) -> Acquisition:
        return storage.acquire_window(key, limit=limit, window_ms=window_ms, now_ms=now)

    return _agreeing(request, acquire, steps)


def _given_window(steps: st.SearchStrategy[int]) -> Any:
    """Hypothesis cases of a sliding window policy and a run of clock steps from ``steps``."""
    return given(
        limit=st.integers(1, 6),
        window_ms=st.integers(1_000, 10_000),
        steps=st.lists(steps, min_size=1, max_size=40),
    )


@pytest.mark.spec("RL-1")
@pytest.mark.spec("RL-4")
@_SETTINGS
@_given_window(_FORWARD)
def test_sliding_window_is_an_exact_log_in_memory_and_redis(
    request: pytest.FixtureRequest, limit: int, window_ms: int, steps: list[int]
) -> None:
    allowed_at: list[int] = []
    for now, result in _window_results(request, limit, window_ms, steps):
        live = [t for t in allowed_at if now - window_ms < t]
        # let through if and only if fewer than `limit` requests are in the window
        assert result.allowed == (len(live) < limit)
        if result.allowed:
            allowed_at.append(now)
            assert result.remaining == limit - len(live) - 1
            assert result.retry_after_ms == 0
            assert result.reset_after_ms == window_ms
        else:
            assert result.remaining == 0
            assert result.retry_after_ms == min(live) + window_ms - now > 0
            assert result.reset_after_ms == max(live) + window_ms - now


@pytest.mark.spec("RL-1")
@_SETTINGS
@_given_window(_STEPS)
def test_sliding_window_under_clock_skew_agrees_and_never_exceeds_the_limit(
    request: pytest.FixtureRequest, limit: int, window_ms: int, steps: list[int]
) -> None:
    # a request from a clock behind the log's newest entry is recorded at that entry's time:
    # on the log's own timeline (the latest time it has seen) no window holds more than `limit`
    recorded: list[int] = []
    for now, result in _window_results(request, limit, window_ms, steps):
        latest = max([now, *recorded])
        if result.allowed:
            recorded.append(latest)
        else:
            live = [t for t in recorded if t > latest - window_ms]
            assert len(live) == limit
            assert result.retry_after_ms == min(live) + window_ms - now
    for start in recorded:
        inside = [t for t in recorded if start <= t < start + window_ms]
        assert len(inside) <= limit, (start, recorded)


@pytest.mark.spec("RL-2")
@pytest.mark.spec("RL-4")
@_SETTINGS
@given(
    capacity=st.integers(1, 8),
    refill_fraction=st.integers(1, 8),
    period_ms=st.one_of(st.integers(1, 5_000), st.just(86_400_000)),
    steps=st.lists(_STEPS, min_size=1, max_size=40),
)
def test_token_bucket_memory_and_redis_agree_and_never_exceed_the_refill(
    request: pytest.FixtureRequest,
    capacity: int,
    refill_fraction: int,
    period_ms: int,
    steps: list[int],
) -> None:
    refill = max(1, capacity * refill_fraction // 8)

    def acquire(storage: RateLimitStorage, key: str, now: int) -> Acquisition:
        return storage.acquire_bucket(
            key, capacity=capacity, refill_amount=refill, refill_period_ms=period_ms, now_ms=now
        )

    latest: int | None = None  # the bucket's own timeline: the latest time it has seen
    allowed_at: list[int] = []
    for now, result in _agreeing(request, acquire, steps):
        latest = now if latest is None else max(latest, now)
        if result.allowed:
            allowed_at.append(latest)
    # over any stretch of the timeline, at most capacity + refill * elapsed / period got through
    for i, start in enumerate(allowed_at):
        for j in range(i, len(allowed_at)):
            elapsed = allowed_at[j] - start
            assert j - i + 1 <= capacity + refill * elapsed // period_ms


@pytest.mark.spec("RL-2")
def test_extreme_bucket_stays_exact_in_lua(request: pytest.FixtureRequest) -> None:
    """The largest policy the validators allow: 10**7 tokens per day, ms resolution."""

    def acquire(storage: RateLimitStorage, key: str, now: int) -> Acquisition:
        return storage.acquire_bucket(
            key, capacity=10_000_000, refill_amount=1, refill_period_ms=86_400_000, now_ms=now
        )

    answers = _agreeing(request, acquire, (0, 1, 86_399_999, 1, 10**12))
    assert answers[-1][1] == Acquisition(
        allowed=True, remaining=9_999_999, retry_after_ms=0, reset_after_ms=86_400_000
    )


def test_memory_sweeps_keys_whose_state_has_expired() -> None:
    memory = MemoryRateLimitStorage()
    now = START_MS
    for n in range(5_000):
        memory.acquire_window(f"k{n}", limit=1, window_ms=1_000, now_ms=now)
    assert len(memory) == 5_000
    now += 1_000
    for n in range(5_000):
        memory.acquire_bucket(
            f"b{n}", capacity=1, refill_amount=1, refill_period_ms=1_000, now_ms=now
        )
    # the 5,000 windows expired and were swept; the buckets are live for another second
    assert len(memory) <= 5_000
    now += 1_000
    for _ in range(4_096):
        memory.acquire_window("again", limit=10_000, window_ms=1_000, now_ms=now)
    assert len(memory) == 1


@pytest.mark.spec("RL-4")
def test_redis_keys_expire_with_their_state(
    request: pytest.FixtureRequest, redis_client: Any
) -> None:
    redis_storage = _redis_storage(request)
    window_key = f"w:{secrets.token_hex(8)}"
    bucket_key = f"b:{secrets.token_hex(8)}"
    redis_storage.acquire_window(window_key, limit=5, window_ms=60_000, now_ms=START_MS)
    redis_storage.acquire_bucket(
        bucket_key, capacity=10, refill_amount=1, refill_period_ms=3_000, now_ms=START_MS
    )
    prefix: str = request.getfixturevalue("redis_prefix")
    # each lives until its state has expired on the caller's clock, plus the grace
    assert 64_000 < redis_client.pttl(f"{prefix}model:{window_key}") <= 65_000
    assert 7_000 < redis_client.pttl(f"{prefix}model:{bucket_key}") <= 8_000
    assert redis_client.llen(f"{prefix}model:{window_key}") == 1


@pytest.mark.spec("RL-4")
def test_short_lived_state_outlives_a_slow_caller(
    request: pytest.FixtureRequest, redis_client: Any
) -> None:
    """A bucket that refills in 2 ms and a 1 ms window would otherwise get a 2 ms and a 1 ms
    time-to-live in real time: a caller whose clock lags (a loaded test, another host) then finds
    the key gone while, on its own clock, the state is still live, and Redis answers as if the
    bucket were full where memory keeps the exact state."""
    redis_storage = _redis_storage(request)
    prefix: str = request.getfixturevalue("redis_prefix")
    bucket_key = f"b:{secrets.token_hex(8)}"
    window_key = f"w:{secrets.token_hex(8)}"
    redis_storage.acquire_bucket(
        bucket_key, capacity=2, refill_amount=1, refill_period_ms=2, now_ms=START_MS
    )
    redis_storage.acquire_window(window_key, limit=3, window_ms=1, now_ms=START_MS)
    assert 4_000 < redis_client.pttl(f"{prefix}model:{bucket_key}") <= 5_002
    assert 4_000 < redis_client.pttl(f"{prefix}model:{window_key}") <= 5_001
    # and a lagging caller is still served on the key's own timeline, as in memory
    memory = MemoryRateLimitStorage()
    memory.acquire_bucket(
        bucket_key, capacity=2, refill_amount=1, refill_period_ms=2, now_ms=START_MS
    )
    for storage in (memory, redis_storage):
        assert storage.acquire_bucket(
            bucket_key, capacity=2, refill_amount=1, refill_period_ms=2, now_ms=START_MS - 1_000
        ) == Acquisition(allowed=True, remaining=0, retry_after_ms=0, reset_after_ms=1_004)
