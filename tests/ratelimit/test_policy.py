"""Policies: the spec's numbers as presets (RL-1, RL-2), validation, ``limits`` rate strings."""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

from storno_security import ratelimit
from storno_security.clock import FrozenClock
from storno_security.ratelimit import (
    RateLimiter,
    SlidingWindowPolicy,
    TokenBucketPolicy,
    spec_policies,
)
from storno_security.stores.memory import MemoryRateLimitStorage

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


@pytest.mark.spec("RL-1")
def test_spec_sliding_windows_have_the_spec_numbers() -> None:
    windows = {p.name: p for p in spec_policies() if isinstance(p, SlidingWindowPolicy)}
    assert {name: (p.limit, p.window) for name, p in windows.items()} == {
        "login": (5, MINUTE),
        "register": (10, HOUR),
        "mfa_verify": (5, MINUTE),
        "google_login": (10, MINUTE),
        "passkey_login": (10, MINUTE),
        "passkey_login_options": (10, MINUTE),
        "forgot_password": (3, timedelta(minutes=15)),
        "reset_password": (3, timedelta(minutes=15)),
        "license_validation": (10, HOUR),
    }
    # authentication endpoints fail closed, whatever the API setting (RL-4)
    for policies in (spec_policies(), spec_policies(api_fail_open=True)):
        assert not any(p.fail_open for p in policies if isinstance(p, SlidingWindowPolicy))


@pytest.mark.spec("RL-2")
def test_spec_token_buckets_have_the_spec_numbers() -> None:
    buckets = {p.name: p for p in spec_policies() if isinstance(p, TokenBucketPolicy)}
    assert {
        name: (p.capacity, p.refill_amount, p.refill_period, p.fail_open)
        for name, p in buckets.items()
    } == {
        "api_unauthenticated": (10_000, 100, timedelta(minutes=5), False),
        "api_authenticated": (50_000, 500, timedelta(minutes=2), False),
    }
    open_buckets = [
        p for p in spec_policies(api_fail_open=True) if isinstance(p, TokenBucketPolicy)
    ]
    assert [p.fail_open for p in open_buckets] == [True, True]


def test_name_constants_match_the_presets() -> None:
    names = {p.name for p in spec_policies()}
    constants = {getattr(ratelimit, n) for n in ratelimit.__all__ if n.isupper()}
    assert names == constants


def test_default_limiter_uses_the_spec_policies() -> None:
    limiter = RateLimiter(MemoryRateLimitStorage(), clock=FrozenClock())
    assert dict(limiter.policies) == {p.name: p for p in spec_policies()}
    with pytest.raises(TypeError):
        limiter.policies["x"] = spec_policies()[0]  # type: ignore[index]


@pytest.mark.parametrize(
    ("text", "limit", "window"),
    [
        ("5/minute", 5, MINUTE),
        ("10 per hour", 10, HOUR),
        ("3 per 15 minutes", 3, timedelta(minutes=15)),
        ("10/second", 10, timedelta(seconds=1)),
    ],
)
def test_parse_uses_limits_notation(text: str, limit: int, window: timedelta) -> None:
    policy = SlidingWindowPolicy.parse("x", text)
    assert (policy.limit, policy.window, policy.fail_open) == (limit, window, False)


@pytest.mark.parametrize("text", ["", "five per minute", "5/minute;6/hour", "5/fortnight"])
def test_parse_refuses_what_is_not_one_rate(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - limits' and ours
        SlidingWindowPolicy.parse("x", text)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "", "limit": 5, "window": MINUTE},
        {"name": "Login", "limit": 5, "window": MINUTE},
        {"name": "log in", "limit": 5, "window": MINUTE},
        {"name": "x" * 65, "limit": 5, "window": MINUTE},
        {"name": "login", "limit": 0, "window": MINUTE},
        {"name": "login", "limit": 10_001, "window": MINUTE},
        {"name": "login", "limit": 5, "window": timedelta(milliseconds=999)},
        {"name": "login", "limit": 5, "window": timedelta(days=1, milliseconds=1)},
        {"name": "login", "limit": 5, "window": timedelta(seconds=1, microseconds=1)},
    ],
)
def test_sliding_window_policy_refuses_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        SlidingWindowPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"capacity": 0, "refill_amount": 1, "refill_period": MINUTE},
        {"capacity": 10, "refill_amount": 11, "refill_period": MINUTE},
        {"capacity": 10, "refill_amount": 0, "refill_period": MINUTE},
        {"capacity": 10, "refill_amount": 1, "refill_period": timedelta(0)},
        {"capacity": 10, "refill_amount": 1, "refill_period": timedelta(microseconds=1500)},
        {"capacity": 10_000_001, "refill_amount": 1, "refill_period": MINUTE},
        {"capacity": 10, "refill_amount": 1, "refill_period": timedelta(days=1, milliseconds=1)},
    ],
)
def test_token_bucket_policy_refuses_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        TokenBucketPolicy(name="api", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit": 5.0, "window": MINUTE},
        {"limit": True, "window": MINUTE},
        {"limit": 5, "window": 60},
        {"limit": 5, "window": MINUTE, "fail_open": 1},
    ],
)
def test_policy_refuses_bad_types(kwargs: dict[str, object]) -> None:
    with pytest.raises(TypeError):
        SlidingWindowPolicy(name="login", **kwargs)  # type: ignore[arg-type]


def test_policies_are_frozen() -> None:
    policy = spec_policies()[0]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy.limit = 100  # type: ignore[misc]


def test_limiter_refuses_duplicate_names_and_empty_sets() -> None:
    clock = FrozenClock()
    login = SlidingWindowPolicy(name="login", limit=5, window=MINUTE)
    with pytest.raises(ValueError, match="two policies"):
        RateLimiter(MemoryRateLimitStorage(), clock=clock, policies=[login, login])
    with pytest.raises(ValueError, match="at least one"):
        RateLimiter(MemoryRateLimitStorage(), clock=clock, policies=[])
    with pytest.raises(TypeError):
        RateLimiter(MemoryRateLimitStorage(), clock=clock, policies=["5/minute"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        RateLimiter(MemoryRateLimitStorage(), clock=object(), policies=[login])  # type: ignore[arg-type]


def test_import_connects_nothing_and_starts_no_thread() -> None:
    import subprocess
    import sys

    code = (
        "import sys, threading\n"
        "import storno_security.ratelimit\n"
        "assert 'redis' not in sys.modules, 'redis imported'\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("rate", [5, None, b"5/minute"])
def test_parse_refuses_a_rate_that_is_not_text(rate: object) -> None:
    with pytest.raises(TypeError, match=f"rate must be a str, not {type(rate).__name__}"):
        SlidingWindowPolicy.parse("x", rate)  # type: ignore[arg-type]
