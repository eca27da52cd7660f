"""The API-key policy: frozen, validated, defaults from the spec (KEY-1, KEY-3)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs

__all__ = ["ApiKeyPolicy"]


def _check_interval(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, timedelta):
        raise TypeError(f"{attribute.name} must be a timedelta")
    if not timedelta(seconds=1) <= value <= timedelta(days=1):
        raise ValueError(f"{attribute.name} must be between 1 second and 1 day")


def _check_lifetime(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, timedelta):
        raise TypeError(f"{attribute.name} must be a timedelta or None")
    if not timedelta(minutes=1) <= value <= timedelta(days=3660):
        raise ValueError(f"{attribute.name} must be between 1 minute and 3660 days")


def _check_bool(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{attribute.name} must be a bool")


@attrs.frozen(kw_only=True)
class ApiKeyPolicy:
    """How API keys are issued and checked.

    The key format itself (KEY-1) is fixed, not a policy: a key issued under one policy must
    parse under every other.

    Attributes:
        last_used_interval: ``last_used_at`` is written at most once per this interval per key
            (KEY-3); default 60 seconds.
        accept_legacy_keys: whether keys of the platform's older form (``af_`` + 64 hex
            characters) verify (KEY-1). Default ``True``; turn it off once every legacy key
            has been replaced.
        max_lifetime: when set, every new key expires at most this long after its creation,
            and a key created without an expiry gets exactly this lifetime. Default ``None``
            (keys may live until revoked).
    """

    last_used_interval: timedelta = attrs.field(
        default=timedelta(seconds=60), validator=_check_interval
    )
    accept_legacy_keys: bool = attrs.field(default=True, validator=_check_bool)
    max_lifetime: timedelta | None = attrs.field(default=None, validator=_check_lifetime)
