"""What a verified license is, and what a check reports (LIC-2, LIC-3)."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

__all__ = ["Entitlements", "License", "LicenseState", "LicenseStatus"]


def _count(instance: object, attribute: attrs.Attribute[int | None], value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"{attribute.name} must be a non-negative int or None (no limit)")


def _features(value: object) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, frozenset | set | list | tuple):
        raise TypeError("features must be a collection of str")
    if not all(isinstance(item, str) and item for item in value):
        raise ValueError("features must be non-empty strings")
    return frozenset(value)


def _non_empty(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{attribute.name} must be a non-empty string")


@attrs.frozen(kw_only=True)
class Entitlements:
    """What an organization may use: a plan, its features and its limits.

    A license carries one; the policy's ``free_plan`` is another (what the application enforces
    once a license is past its grace period).

    Attributes:
        plan: the plan's name (``"free"``, ``"business"``, ...).
        features: the features switched on.
        max_companies: the most companies; ``None`` for no limit.
        max_users: the most users; ``None`` for no limit.
    """

    plan: str = attrs.field(validator=_non_empty)
    features: frozenset[str] = attrs.field(factory=frozenset, converter=_features)
    max_companies: int | None = attrs.field(validator=_count)
    max_users: int | None = attrs.field(validator=_count)

    def has(self, feature: str) -> bool:
        """Whether ``feature`` is switched on."""
        return feature in self.features


@attrs.frozen(kw_only=True)
class License:
    """The verified content of a license token (LIC-2).

    Attributes:
        license_id: ``jti``.
        issuer: ``iss``, the vendor.
        organization_id: ``sub``, the licensee organization.
        org_name: ``org_name``.
        entitlements: ``plan``, ``features``, ``max_companies``, ``max_users``.
        instance_id: ``instance_id``, the one installation the license is bound to, or ``None``.
        issued_at: ``iat``.
        not_before: ``nbf``.
        expires_at: ``exp``.
        kid: the key that signed it.
    """

    license_id: str
    issuer: str
    organization_id: str
    org_name: str
    entitlements: Entitlements
    instance_id: str | None
    issued_at: datetime
    not_before: datetime
    expires_at: datetime
    kid: str

    @property
    def plan(self) -> str:
        """The licensed plan."""
        return self.entitlements.plan

    @property
    def features(self) -> frozenset[str]:
        """The licensed features."""
        return self.entitlements.features

    @property
    def max_companies(self) -> int | None:
        """The licensed company limit (``None``: no limit)."""
        return self.entitlements.max_companies

    @property
    def max_users(self) -> int | None:
        """The licensed user limit (``None``: no limit)."""
        return self.entitlements.max_users


class LicenseState(enum.Enum):
    """Where a genuine license stands in time (LIC-3)."""

    #: Before ``exp``.
    VALID = "valid"
    #: After ``exp``, within the grace period: still honoured; tell the customer to renew.
    GRACE = "grace"
    #: After the grace period: fall back to the free plan.
    EXPIRED = "expired"


@attrs.frozen(kw_only=True)
class LicenseStatus:
    """The result of checking a genuine license (never an error for mere expiry).

    Attributes:
        state: valid, expired in grace, or expired past grace.
        license: the verified license (also when expired, to show the customer what lapsed).
        entitlements: what the application should enforce now: the license's while ``VALID``
            or ``GRACE``; after grace, the policy's ``free_plan`` (``None`` if the policy has
            none: the application then decides from ``state``).
        checked_at: the time the license was judged at: the clock's time, or the last verified
            time when the clock reads earlier than that (so turning the clock back gains
            nothing).
        clock_time: what the clock read.
        clock_rollback: the clock read earlier than the last verified time (or than the
            license's ``iat``) by more than the policy's tolerance: report it.
        grace_ends_at: ``exp`` plus the grace period.
    """

    state: LicenseState
    license: License
    entitlements: Entitlements | None
    checked_at: datetime
    clock_time: datetime
    clock_rollback: bool
    grace_ends_at: datetime

    @property
    def in_grace(self) -> bool:
        """Expired, in grace: honour it and ask for a renewal."""
        return self.state is LicenseState.GRACE

    @property
    def expired(self) -> bool:
        """Past the grace period: fall back to the free plan."""
        return self.state is LicenseState.EXPIRED
