"""The license policy: frozen, validated, defaults from the spec (LIC-3)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs

from storno_security._validators import between, int_between
from storno_security.license.model import Entitlements

__all__ = ["LicensePolicy"]


def _issuer(instance: Any, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("issuer must be a non-empty string")


@attrs.frozen(kw_only=True)
class LicensePolicy:
    """How licenses are judged.

    Attributes:
        issuer: the ``iss`` a license must carry (the vendor).
        grace_period: how long after ``exp`` a license is still honoured, reported as "expired,
            in grace". Default 14 days.
        free_plan: what to enforce after the grace period (``None``: nothing; the application
            reads ``LicenseStatus.state``).
        leeway: clock skew tolerated on ``nbf`` and ``iat``; at most 60 s. Default 60 s.
        rollback_tolerance: how far the clock may read behind the last verified time before
            it is reported as set back (NTP corrections, hosts sharing one store). The time a
            license is judged at never goes back, whatever this says. Default 5 minutes.
        require_instance_binding: refuse licenses that carry no ``instance_id``.
        require_organization_binding: refuse to verify unless the organization the license is
            checked for is known (``LicenseVerifier(organization_id=...)`` or
            ``verify(..., expected_organization_id=...)``), so ``sub`` is always compared.
            Default on; turn it off only where one installation serves one organization.
        max_token_bytes: longer tokens are refused before any parsing.
    """

    issuer: str = attrs.field(validator=_issuer)
    grace_period: timedelta = attrs.field(
        default=timedelta(days=14), validator=between(timedelta(0), timedelta(days=365))
    )
    free_plan: Entitlements | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(attrs.validators.instance_of(Entitlements)),
    )
    leeway: timedelta = attrs.field(
        default=timedelta(seconds=60), validator=between(timedelta(0), timedelta(seconds=60))
    )
    rollback_tolerance: timedelta = attrs.field(
        default=timedelta(minutes=5), validator=between(timedelta(0), timedelta(days=1))
    )
    require_instance_binding: bool = attrs.field(
        default=False, validator=attrs.validators.instance_of(bool)
    )
    require_organization_binding: bool = attrs.field(
        default=True, validator=attrs.validators.instance_of(bool)
    )
    max_token_bytes: int = attrs.field(
        default=16384, validator=int_between(512, 65536, wrong_type=ValueError)
    )
