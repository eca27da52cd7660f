"""The limiter over every storage (memory, Redis): windows, buckets, statuses, time driven by the
frozen clock (RL-1, RL-2, RL-3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from storno_security.clock import FrozenClock, SystemClock
from storno_security.errors import (
    RateLimitError,
    RateLimitExceededError,
    RateLimitUnavailableError,
    StoreUnavailableError,
)
from storno_security.ratelimit import (
    RateLimiter,
    RateLimitStatus,
    RateLimitStorage,
    SlidingWindowPolicy,
    TokenBucketPolicy,
    spec_policies,
)
from storno_security.ratelimit.storage import Acquisition
from storno_security.stores.memory import MemoryRateLimitStorage

IP = "203.0.113.7"
OTHER_IP = "198.51.100.9"


def _refusal(limiter: RateLimiter, policy: str, identifier: str) -> RateLimitExceededError:
    """The error of a hit that ``limiter`` refuses; fails the test if the hit is allowed."""
    with pytest.raises(RateLimitExceededError) as refused:
        limiter.hit(policy, identifier)
    return refused.value


def _bucket_limiter(
    storage: RateLimitStorage,
    clock: FrozenClock,
    *,
    capacity: int,
    refill_amount: int,
    seconds: int,
) -> RateLimiter:
    """A limiter of one token bucket policy ``api``."""
    policy = TokenBucketPolicy(
        name="api",
        capacity=capacity,
        refill_amount=refill_amount,
        refill_period=timedelta(seconds=seconds),
    )
    return RateLimiter(storage, clock=clock, policies=[policy])


def _drain(limiter: RateLimiter, policy: str, identifier: str = IP) -> int:
    """Hit until refused; return how many got through."""
    allowed = 0
    while True:
        try:
            limiter.hit(policy, identifier)
        except RateLimitExceededError:
            return allowed
        allowed += 1


@pytest.mark.spec("RL-1")
@pytest.mark.parametrize(
    "policy", [p for p in spec_policies() if isinstance(p, SlidingWindowPolicy)], ids=str
)
def test_each_window_allows_its_limit_then_refuses_until_the_window_passes(
    policy: SlidingWindowPolicy, limiter: RateLimiter, clock: FrozenClock
) -> None:
    assert _drain(limiter, policy.name) == policy.limit
    # still refused one millisecond before the first request leaves the window
    clock.advance(policy.window - timedelta(milliseconds=1))
    _refusal(limiter, policy.name, IP)
    clock.advance(timedelta(milliseconds=1))
    assert _drain(limiter, policy.name) == policy.limit


@pytest.mark.spec("RL-1")
def test_the_window_slides_rather_than_resetting(limiter: RateLimiter, clock: FrozenClock) -> None:
    # 3 logins at 0 s, 2 at 30 s: the 6th is refused until the first three leave at 60 s
    for _ in range(3):
        limiter.hit("login", IP)
    clock.advance(30)
    for _ in range(2):
        limiter.hit("login", IP)
    clock.advance(29.999)
    refused = _refusal(limiter, "login", IP)
    assert refused.status.retry_after == 1  # 1 ms, rounded up to a whole second
    clock.advance(0.001)  # 60 s after the first three
    assert _drain(limiter, "login") == 3
    # a fixed window would now allow 5 more at 90 s; the sliding one allows the 2 of 30 s
    clock.advance(30)
    assert _drain(limiter, "login") == 2


@pytest.mark.spec("RL-1")
def test_limits_are_per_client_and_per_policy(limiter: RateLimiter) -> None:
    assert _drain(limiter, "login") == 5
    assert _drain(limiter, "login", OTHER_IP) == 5
    assert _drain(limiter, "mfa_verify") == 5
    assert _drain(limiter, "forgot_password") == 3
    assert _drain(limiter, "reset_password") == 3


@pytest.mark.spec("RL-1")
def test_refused_requests_do_not_count(limiter: RateLimiter, clock: FrozenClock) -> None:
    assert _drain(limiter, "login") == 5
    for _ in range(50):
        clock.advance(1)
        _refusal(limiter, "login", IP)
    clock.advance(10)  # 60 s after the five: free again however much was refused meanwhile
    assert _drain(limiter, "login") == 5


@pytest.mark.spec("RL-3")
def test_statuses_carry_what_the_headers_need(limiter: RateLimiter, clock: FrozenClock) -> None:
    statuses = [limiter.hit("forgot_password", IP)]
    clock.advance(100)
    statuses.append(limiter.hit("forgot_password", IP))
    statuses.append(limiter.hit("forgot_password", IP))
    assert statuses == [
        RateLimitStatus(policy="forgot_password", limit=3, remaining=2, reset=900, retry_after=0),
        RateLimitStatus(policy="forgot_password", limit=3, remaining=1, reset=900, retry_after=0),
        RateLimitStatus(policy="forgot_password", limit=3, remaining=0, reset=900, retry_after=0),
    ]
    clock.advance(0.5)
    error = _refusal(limiter, "forgot_password", IP)
    assert str(error) == "Too many requests. Please try again later."
    assert error.reason == "exceeded"
    assert isinstance(error, RateLimitError)
    # the first request leaves the window at 900 s, the last at 1000 s (from 100.5 s: 899.5)
    assert error.status == RateLimitStatus(
        policy="forgot_password", limit=3, remaining=0, reset=900, retry_after=800
    )


@pytest.mark.spec("RL-3")
def test_retry_after_is_at_least_one_second(limiter: RateLimiter, clock: FrozenClock) -> None:
    _drain(limiter, "login")
    clock.advance(timedelta(seconds=59, milliseconds=999, microseconds=999))
    refused = _refusal(limiter, "login", IP)
    assert refused.status.retry_after == 1
    assert refused.status.reset == 1


@pytest.mark.spec("RL-2")
def test_unauthenticated_bucket_bursts_10000_then_refills_100_per_5_minutes(
    limiter: RateLimiter, clock: FrozenClock
) -> None:
    first = limiter.hit("api_unauthenticated", IP)
    assert (first.limit, first.remaining, first.reset) == (10_000, 9_999, 3)  # 1 token per 3 s
    assert _drain(limiter, "api_unauthenticated") == 9_999
    clock.advance(timedelta(minutes=5))
    assert _drain(limiter, "api_unauthenticated") == 100
    clock.advance(2.999)
    refused = _refusal(limiter, "api_unauthenticated", IP)
    assert refused.status.retry_after == 1
    # empty: 10,000 tokens at 1 per 3 s is 30,000 s until full (less the 2.999 s refilled)
    assert refused.status.reset == 29_998
    clock.advance(0.001)
    status = limiter.hit("api_unauthenticated", IP)
    assert (status.remaining, status.reset) == (0, 30_000)


@pytest.mark.spec("RL-2")
def test_authenticated_bucket_bursts_50000_then_refills_500_per_2_minutes(
    clock: FrozenClock,
) -> None:
    # memory only: 100,000 Redis round trips would be slow, and the Redis script is proven to
    # agree with the memory arithmetic step by step in test_storage_model.py
    limiter = RateLimiter(MemoryRateLimitStorage(), clock=clock)
    assert _drain(limiter, "api_authenticated") == 50_000
    clock.advance(timedelta(minutes=2))
    assert _drain(limiter, "api_authenticated") == 500
    clock.advance(timedelta(days=1))
    assert _drain(limiter, "api_authenticated") == 50_000  # never more than the capacity


@pytest.mark.spec("RL-2")
def test_bucket_refill_is_continuous_and_capped(
    storage: RateLimitStorage, clock: FrozenClock
) -> None:
    limiter = _bucket_limiter(storage, clock, capacity=10, refill_amount=2, seconds=1)
    assert _drain(limiter, "api") == 10
    clock.advance(0.499)
    refused = _refusal(limiter, "api", IP)
    assert refused.status.retry_after == 1  # 1 ms short
    clock.advance(0.001)
    assert _drain(limiter, "api") == 1
    clock.advance(2.75)  # 5.5 tokens: 5 now, half a token kept
    assert _drain(limiter, "api") == 5
    clock.advance(0.25)
    assert _drain(limiter, "api") == 1
    clock.advance(3600)
    assert _drain(limiter, "api") == 10


@pytest.mark.spec("RL-2")
def test_a_clock_behind_the_stored_time_refills_nothing(
    storage: RateLimitStorage, clock: FrozenClock
) -> None:
    limiter = _bucket_limiter(storage, clock, capacity=3, refill_amount=1, seconds=10)
    assert _drain(limiter, "api") == 3
    clock.advance(-60)  # another host, a minute behind
    refused = _refusal(limiter, "api", IP)
    assert refused.status.retry_after == 70
    clock.advance(60)
    _refusal(limiter, "api", IP)
    clock.advance(10)
    assert _drain(limiter, "api") == 1


@pytest.mark.spec("RL-1")
def test_a_window_entry_from_a_clock_ahead_counts_until_it_leaves(
    limiter: RateLimiter, clock: FrozenClock
) -> None:
    clock.advance(30)  # a host half a minute ahead records five logins
    assert _drain(limiter, "login") == 5
    clock.advance(-30)
    refused = _refusal(limiter, "login", IP)
    assert refused.status.retry_after == 90


def test_unknown_policy_and_bad_identifiers(limiter: RateLimiter) -> None:
    with pytest.raises(KeyError):
        limiter.hit("nope", IP)
    with pytest.raises(TypeError):
        limiter.hit("login", b"203.0.113.7")  # type: ignore[arg-type]
    with pytest.raises(ValueError):  # noqa: PT011
        limiter.hit("login", "")
    with pytest.raises(ValueError):  # noqa: PT011
        limiter.hit("login", "x" * 257)
    limiter.hit("login", "x" * 256)


class _Recording:
    """A storage that records each question put to it and lets every request through."""

    def __init__(self) -> None:
        self.asked: list[tuple[bool, str, dict[str, int]]] = []

    def acquire_window(self, key: str, **arguments: int) -> Acquisition:
        self.asked.append((True, key, arguments))
        return Acquisition(allowed=True, remaining=1, retry_after_ms=0, reset_after_ms=1000)

    def acquire_bucket(self, key: str, **arguments: int) -> Acquisition:
        self.asked.append((False, key, arguments))
        return Acquisition(allowed=True, remaining=1, retry_after_ms=0, reset_after_ms=1000)


@pytest.mark.spec("RL-1", "RL-2")
@pytest.mark.parametrize("policy", spec_policies(), ids=str)
def test_a_hit_puts_to_the_storage_exactly_the_question_ask_describes(
    policy: SlidingWindowPolicy | TokenBucketPolicy, clock: FrozenClock
) -> None:
    # hit() sends its question straight to the storage; the async limiter sends ask()'s.
    storage = _Recording()
    limiter = RateLimiter(storage, clock=clock)
    limiter.hit(policy.name, IP)
    ask = limiter.ask(policy.name, IP)
    assert storage.asked == [(ask.window, ask.key, ask.arguments)]
    kind = "sw" if isinstance(policy, SlidingWindowPolicy) else "tb"
    assert ask.key == f"rl:{kind}:{policy.name}:{IP}"
    now_ms = int(clock.now().timestamp()) * 1000
    if isinstance(policy, SlidingWindowPolicy):
        assert (ask.window, ask.limit) == (True, policy.limit)
        assert ask.arguments == {
            "limit": policy.limit,
            "window_ms": policy.window_ms,
            "now_ms": now_ms,
        }
    else:
        assert (ask.window, ask.limit) == (False, policy.capacity)
        assert ask.arguments == {
            "capacity": policy.capacity,
            "refill_amount": policy.refill_amount,
            "refill_period_ms": policy.refill_period_ms,
            "now_ms": now_ms,
        }


class _SlowSystemClock(SystemClock):
    """The system clock through its datetime (a subclass: not read as the system clock is)."""

    __slots__ = ()


def test_the_system_clocks_milliseconds_are_read_as_its_datetime_gives_them() -> None:
    for clock in (SystemClock(), _SlowSystemClock()):
        storage = _Recording()
        limiter = RateLimiter(storage, clock=clock)
        before = datetime.now(UTC)
        limiter.hit("api_authenticated", IP)
        after = datetime.now(UTC)
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        now_ms = storage.asked[0][2]["now_ms"]
        assert isinstance(now_ms, int)
        assert (before - epoch) // timedelta(milliseconds=1) <= now_ms
        assert now_ms <= (after - epoch) // timedelta(milliseconds=1)
    # the real clock is read as milliseconds directly; a subclass through its now()
    assert getattr(limiter._epoch_ms, "__func__", None) is not SystemClock.epoch_ms
    system = RateLimiter(_Recording(), clock=SystemClock())._epoch_ms
    assert getattr(system, "__func__", None) is SystemClock.epoch_ms


def test_a_storage_failure_in_a_hit_answers_as_ask_unavailable(clock: FrozenClock) -> None:
    class Down(_Recording):
        def acquire_bucket(self, key: str, **arguments: Any) -> Acquisition:
            raise StoreUnavailableError(reason="unavailable")

    for fail_open in (True, False):
        limiter = RateLimiter(Down(), clock=clock, policies=spec_policies(api_fail_open=fail_open))
        if fail_open:
            status = limiter.hit("api_authenticated", IP)
            assert status == limiter.ask("api_authenticated", IP).unavailable(Exception())
            assert (status.degraded, status.remaining, status.limit) == (True, 50_000, 50_000)
        else:
            with pytest.raises(RateLimitUnavailableError):
                limiter.hit("api_authenticated", IP)
