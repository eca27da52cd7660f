"""The password policy: frozen, validated, with the spec's numbers as defaults (PW-1, PW-5).

Shared private module: published by :mod:`storno_security.passwords`, used by MFA's backup
codes too."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["PasswordPolicy"]

#: Below this bcrypt cost a policy must say ``insecure_low_cost=True`` (tests only).
MIN_SAFE_COST = 10


def _check_cost(instance: PasswordPolicy, attribute: attrs.Attribute[Any], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("cost must be an int")
    if not 4 <= value <= 31:
        raise ValueError("bcrypt cost must be between 4 and 31")
    if value < MIN_SAFE_COST and not instance.insecure_low_cost:
        raise ValueError(
            f"bcrypt cost {value} is below {MIN_SAFE_COST}; pass insecure_low_cost=True "
            "if this is really meant (tests only)"
        )


@attrs.frozen(kw_only=True)
class PasswordPolicy:
    """How passwords are hashed and what a new password must be.

    Attributes:
        cost: bcrypt work factor (log2 rounds). Default 12 (PW-1).
        min_length: fewest characters (Unicode code points, after NFKC) of a new password.
            Default 8 (PW-5). No composition rules.
        max_bytes: most UTF-8 bytes a password may have, checked before any hashing so a huge
            input cannot burn CPU. Default 1024 (PW-2); longer ones are refused, never cut.
        insecure_low_cost: the explicit, greppable flag that allows a cost below 10. Tests only.
    """

    insecure_low_cost: bool = attrs.field(
        default=False, validator=attrs.validators.instance_of(bool)
    )
    cost: int = attrs.field(default=12, validator=_check_cost)
    min_length: int = attrs.field(
        default=8,
        validator=[attrs.validators.instance_of(int), attrs.validators.in_(range(1, 1025))],
    )
    max_bytes: int = attrs.field(
        default=1024,
        validator=[attrs.validators.instance_of(int), attrs.validators.in_(range(8, 4097))],
    )

    @classmethod
    def insecure_for_tests(cls) -> PasswordPolicy:
        """A policy with bcrypt cost 4, so test suites run fast. Never use it in production."""
        return cls(cost=4, insecure_low_cost=True)
