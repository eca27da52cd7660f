"""Rate-limit policies: frozen, validated, the spec's numbers as named presets (RL-1, RL-2)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import attrs
import limits

from storno_security._validators import int_between

__all__ = [
    "API_AUTHENTICATED",
    "API_UNAUTHENTICATED",
    "FORGOT_PASSWORD",
    "GOOGLE_LOGIN",
    "LICENSE_VALIDATION",
    "LOGIN",
    "MFA_VERIFY",
    "PASSKEY_LOGIN",
    "PASSKEY_LOGIN_OPTIONS",
    "REGISTER",
    "RESET_PASSWORD",
    "SlidingWindowPolicy",
    "TokenBucketPolicy",
    "spec_policies",
]

#: Policy names of the spec (RL-1: sliding windows on authentication endpoints).
LOGIN = "login"
REGISTER = "register"
MFA_VERIFY = "mfa_verify"
GOOGLE_LOGIN = "google_login"
PASSKEY_LOGIN = "passkey_login"
PASSKEY_LOGIN_OPTIONS = "passkey_login_options"
FORGOT_PASSWORD = "forgot_password"  # noqa: S105 - a policy name
RESET_PASSWORD = "reset_password"  # noqa: S105 - a policy name
LICENSE_VALIDATION = "license_validation"
#: Policy names of the spec (RL-2: token buckets on every other endpoint).
API_UNAUTHENTICATED = "api_unauthenticated"
API_AUTHENTICATED = "api_authenticated"

_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_MILLISECOND = timedelta(milliseconds=1)
# Token-bucket state is kept as integers up to capacity * refill_period_ms; Lua numbers are
# doubles, so that product must stay below 2**53 for the arithmetic to stay exact. The bounds
# below keep it under 10**7 * 86_400_000 < 2**50.


def _check_name(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or _NAME.fullmatch(value) is None:
        raise ValueError(
            f"{attribute.name} must be 1-64 characters of a-z, 0-9 and _, starting with a letter"
        )


def _whole_ms_between(low: timedelta, high: timedelta) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, timedelta):
            raise TypeError(f"{attribute.name} must be a timedelta")
        if not low <= value <= high:
            raise ValueError(f"{attribute.name} must be between {low} and {high}")
        if value % _MILLISECOND:
            raise ValueError(f"{attribute.name} must be a whole number of milliseconds")

    return check


def _check_bool(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{attribute.name} must be a bool")


@attrs.frozen(kw_only=True)
class SlidingWindowPolicy:
    """At most ``limit`` requests per client in any ``window`` (a sliding log, exact).

    A request is counted when it is let through; refused requests do not count. A request made at
    time *t* stops counting at *t* + ``window``.

    Attributes:
        name: the policy's name, used in storage keys (``a-z``, ``0-9``, ``_``).
        limit: requests allowed per window, 1 to 10,000 (each allowed request is stored).
        window: the window, 1 second to 1 day, whole milliseconds.
        fail_open: when the storage is down, let requests through (``True``) or refuse them
            with :class:`~storno_security.errors.RateLimitUnavailableError` (``False``, the
            default). Authentication endpoints must fail closed (RL-4).
    """

    name: str = attrs.field(validator=_check_name)
    limit: int = attrs.field(validator=int_between(1, 10_000))
    window: timedelta = attrs.field(
        validator=_whole_ms_between(timedelta(seconds=1), timedelta(days=1))
    )
    fail_open: bool = attrs.field(default=False, validator=_check_bool)

    @classmethod
    def parse(cls, name: str, rate: str, *, fail_open: bool = False) -> SlidingWindowPolicy:
        """Build a policy from a ``limits`` rate string such as ``"5/minute"`` or ``"3 per 15
        minutes"``.

        Raises:
            ValueError: the string is not a single rate, or its numbers are out of range.
            TypeError: an argument has the wrong type.
        """
        if not isinstance(rate, str):
            raise TypeError(f"rate must be a str, not {type(rate).__name__}")
        items = limits.parse_many(rate)
        if len(items) != 1:
            raise ValueError("rate must hold exactly one limit")
        item = items[0]
        return cls(
            name=name,
            limit=item.amount,
            window=timedelta(seconds=item.get_expiry()),
            fail_open=fail_open,
        )

    @property
    def window_ms(self) -> int:
        """The window in milliseconds."""
        return self.window // _MILLISECOND


@attrs.frozen(kw_only=True)
class TokenBucketPolicy:
    """A bucket of ``capacity`` tokens per client, refilled continuously at ``refill_amount``
    tokens per ``refill_period``; each request takes one token.

    A new client starts with a full bucket, so it may burst ``capacity`` requests at once; after
    that it gets ``refill_amount`` requests per ``refill_period`` on average. Refill is exact
    integer arithmetic at millisecond resolution (no drift, no rounding in the client's favour).

    Attributes:
        name: the policy's name, used in storage keys (``a-z``, ``0-9``, ``_``).
        capacity: the burst, 1 to 10,000,000 tokens.
        refill_amount: tokens added per ``refill_period``, 1 to ``capacity``.
        refill_period: 1 millisecond to 1 day, whole milliseconds.
        fail_open: when the storage is down, let requests through (``True``) or refuse them
            with :class:`~storno_security.errors.RateLimitUnavailableError` (``False``, the
            default). This is the policy setting of RL-4 for non-authentication endpoints.
    """

    name: str = attrs.field(validator=_check_name)
    capacity: int = attrs.field(validator=int_between(1, 10_000_000))
    refill_amount: int = attrs.field(validator=int_between(1, 10_000_000))
    refill_period: timedelta = attrs.field(
        validator=_whole_ms_between(timedelta(milliseconds=1), timedelta(days=1))
    )
    fail_open: bool = attrs.field(default=False, validator=_check_bool)

    def __attrs_post_init__(self) -> None:
        if self.refill_amount > self.capacity:
            raise ValueError("refill_amount must not exceed capacity")

    @property
    def refill_period_ms(self) -> int:
        """The refill period in milliseconds."""
        return self.refill_period // _MILLISECOND


def spec_policies(
    *, api_fail_open: bool = False
) -> tuple[SlidingWindowPolicy | TokenBucketPolicy, ...]:
    """The policies of the spec, by name.

    RL-1 (sliding windows per client IP, always failing closed): ``login`` 5/min, ``register``
    10/h, ``mfa_verify`` 5/min, ``google_login`` 10/min, ``passkey_login`` and
    ``passkey_login_options`` 10/min each, ``forgot_password`` and ``reset_password`` 3 per 15
    min each, ``license_validation`` 10/h.

    RL-2 (token buckets per client IP): ``api_unauthenticated`` 10,000 burst refilling 100 per 5
    minutes; ``api_authenticated`` 50,000 burst refilling 500 per 2 minutes.

    Args:
        api_fail_open: whether the two RL-2 policies let requests through when the storage is
            down (RL-4's policy setting). The RL-1 policies always fail closed.

    Raises:
        TypeError: ``api_fail_open`` is not a bool.
    """
    minute = timedelta(minutes=1)
    hour = timedelta(hours=1)
    quarter = timedelta(minutes=15)
    windows: tuple[SlidingWindowPolicy | TokenBucketPolicy, ...] = tuple(
        SlidingWindowPolicy(name=name, limit=limit, window=window)
        for name, limit, window in (
            (LOGIN, 5, minute),
            (REGISTER, 10, hour),
            (MFA_VERIFY, 5, minute),
            (GOOGLE_LOGIN, 10, minute),
            (PASSKEY_LOGIN, 10, minute),
            (PASSKEY_LOGIN_OPTIONS, 10, minute),
            (FORGOT_PASSWORD, 3, quarter),
            (RESET_PASSWORD, 3, quarter),
            (LICENSE_VALIDATION, 10, hour),
        )
    )
    buckets = (
        TokenBucketPolicy(
            name=API_UNAUTHENTICATED,
            capacity=10_000,
            refill_amount=100,
            refill_period=timedelta(minutes=5),
            fail_open=api_fail_open,
        ),
        TokenBucketPolicy(
            name=API_AUTHENTICATED,
            capacity=50_000,
            refill_amount=500,
            refill_period=timedelta(minutes=2),
            fail_open=api_fail_open,
        ),
    )
    return windows + buckets
