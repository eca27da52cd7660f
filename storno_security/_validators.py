"""attrs validators shared by the capabilities' frozen policies.

Private to the library, like ``_compare``: capabilities import it, never each other. Each
factory returns a validator for ``attrs.field(validator=...)``; messages name the attribute and
the bounds, never echo a secret.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs

__all__ = ["between", "int_between", "non_empty_str", "non_empty_tuple_of"]


def between(low: timedelta, high: timedelta) -> Any:
    """A ``timedelta`` from ``low`` to ``high`` inclusive.

    The validator raises ``TypeError`` for anything but a ``timedelta`` and ``ValueError``
    outside the bounds.
    """

    def check(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, timedelta):
            raise TypeError(f"{attribute.name} must be a timedelta")
        if not low <= value <= high:
            raise ValueError(f"{attribute.name} must be between {low} and {high}")

    return check


def int_between(low: int, high: int, *, wrong_type: type[Exception] = TypeError) -> Any:
    """An ``int`` (never a ``bool``) from ``low`` to ``high`` inclusive.

    The validator raises ``wrong_type`` (``TypeError`` unless a policy has always raised
    ``ValueError`` there) for a non-int and ``ValueError`` outside the bounds.
    """

    def check(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong_type(f"{attribute.name} must be an int between {low} and {high}")
        if not low <= value <= high:
            raise ValueError(f"{attribute.name} must be an int between {low} and {high}")

    return check


def non_empty_str(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    """A ``str`` with at least one non-whitespace character, or ``ValueError``."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{attribute.name} must be a non-empty string")


def non_empty_tuple_of(allowed: frozenset[Any]) -> Any:
    """A non-empty ``tuple`` whose every item is in ``allowed`` (an allow-list), or ``ValueError``.

    Order is kept: a policy's first algorithm is the one it signs with.
    """

    def check(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, tuple) or not value:
            raise ValueError(f"{attribute.name} must be a non-empty tuple")
        unknown = [item for item in value if item not in allowed]
        if unknown:
            raise ValueError(
                f"{attribute.name} not allowed: {unknown}; choose from {sorted(allowed)}"
            )

    return check
