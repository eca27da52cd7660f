"""Strict reading of license claims, and the license header type. Private to the package."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from storno_security._jws import numeric_date
from storno_security.errors import InvalidLicenseError
from storno_security.license.model import Entitlements, License

#: The ``typ`` header of a license, so no other JWT signed by the same key passes as one.
LICENSE_TYPE: Final = "license+jwt"


def reject(reason: str) -> InvalidLicenseError:
    return InvalidLicenseError(reason=reason)


def _string(payload: Mapping[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise reject(f"claim_{name}")
    return value


def _date(payload: Mapping[str, Any], name: str) -> datetime:
    moment = numeric_date(payload.get(name))  # None outside years 1 to 9999
    if moment is None:
        raise reject(f"claim_{name}")
    return moment


def _limit(payload: Mapping[str, Any], name: str) -> int | None:
    if name not in payload:
        raise reject(f"claim_{name}")
    value = payload[name]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise reject(f"claim_{name}")
    return value


def license_from_payload(payload: Mapping[str, Any], *, kid: str) -> License:
    """Every LIC-2 claim present and typed, or :class:`InvalidLicenseError` (``claim_<name>``).

    ``max_companies`` and ``max_users`` must be present: a non-negative integer, or ``null``
    for no limit. ``instance_id`` may be absent; when present it is a non-empty string.
    """
    features = payload.get("features")
    if not isinstance(features, list) or not all(isinstance(f, str) and f for f in features):
        raise reject("claim_features")
    instance_id = payload.get("instance_id")
    if "instance_id" in payload and (not isinstance(instance_id, str) or not instance_id):
        raise reject("claim_instance_id")
    not_before = _date(payload, "nbf")
    expires_at = _date(payload, "exp")
    if expires_at <= not_before:
        raise reject("claim_exp")
    return License(
        license_id=_string(payload, "jti"),
        issuer=_string(payload, "iss"),
        organization_id=_string(payload, "sub"),
        org_name=_string(payload, "org_name"),
        entitlements=Entitlements(
            plan=_string(payload, "plan"),
            features=frozenset(features),
            max_companies=_limit(payload, "max_companies"),
            max_users=_limit(payload, "max_users"),
        ),
        instance_id=instance_id,
        issued_at=_date(payload, "iat"),
        not_before=not_before,
        expires_at=expires_at,
        kid=kid,
    )
