"""Issuing licenses on the vendor side, from a private key (LIC-4)."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

import attrs
import jwt

from storno_security._jws import MAX_NUMERIC_DATE, MIN_NUMERIC_DATE
from storno_security.clock import Clock, ensure_aware_utc
from storno_security.license._claims import LICENSE_TYPE, license_from_payload
from storno_security.license.keys import LicenseSigningKey
from storno_security.license.model import Entitlements, License

__all__ = ["IssuedLicense", "LicenseIssuer"]

_MIN_VALIDITY = timedelta(minutes=1)
_MAX_VALIDITY = timedelta(days=3660)


@attrs.frozen
class IssuedLicense:
    """A freshly signed license.

    Attributes:
        token: the compact JWT to hand to the customer (not in ``repr``).
        license: what it says, as the verifier will read it.
    """

    token: str = attrs.field(repr=False)
    license: License


class LicenseIssuer:
    """Signs licenses with the vendor's key (LIC-4). Runs on the vendor's side only.

    Args:
        key: the signing key; its algorithm (RS256 or EdDSA) and ``kid`` go into the header.
        issuer: the ``iss`` claim (the verifiers' ``LicensePolicy.issuer``).
        clock: the time source.

    Raises:
        TypeError: ``key`` is not a :class:`LicenseSigningKey`.
        ValueError: ``issuer`` is empty.
    """

    def __init__(self, key: LicenseSigningKey, *, issuer: str, clock: Clock) -> None:
        if not isinstance(key, LicenseSigningKey):
            raise TypeError("key must be a LicenseSigningKey")
        if not isinstance(issuer, str) or not issuer.strip():
            raise ValueError("issuer must be a non-empty string")
        self._key = key
        self._issuer = issuer
        self._clock = clock

    def issue(
        self,
        organization_id: str,
        *,
        org_name: str,
        plan: str,
        max_companies: int | None,
        max_users: int | None,
        valid_for: timedelta,
        features: Iterable[str] = (),
        instance_id: str | None = None,
        not_before: datetime | None = None,
    ) -> IssuedLicense:
        """Sign a license for ``organization_id``.

        Args:
            organization_id: the licensee organization (``sub``).
            org_name: its name, shown to the customer.
            plan: the plan's name.
            max_companies: the company limit, or ``None`` for none.
            max_users: the user limit, or ``None`` for none.
            valid_for: from ``not_before`` to ``exp``; 1 minute to 10 years.
            features: the features switched on.
            instance_id: bind the license to one installation.
            not_before: when it starts (aware); default now.

        Raises:
            TypeError: an argument has the wrong type (``features`` a plain string,
                ``valid_for`` not a ``timedelta``, ``not_before`` not a ``datetime``).
            ValueError: an empty string, a negative limit, ``valid_for`` out of range, a
                naive ``not_before``, or a validity that does not fit in the calendar (years 1
                to 9999).
        """
        for name, value in (
            ("organization_id", organization_id),
            ("org_name", org_name),
        ):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string")
        if instance_id is not None and (not isinstance(instance_id, str) or not instance_id):
            raise ValueError("instance_id must be a non-empty string or None")
        if not isinstance(valid_for, timedelta):
            raise TypeError("valid_for must be a timedelta")
        if not _MIN_VALIDITY <= valid_for <= _MAX_VALIDITY:
            raise ValueError(f"valid_for must be between {_MIN_VALIDITY} and {_MAX_VALIDITY}")
        if isinstance(features, str):
            raise TypeError("features must be a collection of str, not one str")
        entitlements = Entitlements(
            plan=plan,
            features=frozenset(features),
            max_companies=max_companies,
            max_users=max_users,
        )
        now = int(self._clock.now().timestamp())
        start = now if not_before is None else int(ensure_aware_utc(not_before).timestamp())
        end = start + int(valid_for.total_seconds())
        if start < MIN_NUMERIC_DATE or end > MAX_NUMERIC_DATE:
            raise ValueError("not_before + valid_for must fall within years 1 to 9999")
        payload: dict[str, object] = {
            "iss": self._issuer,
            "sub": organization_id,
            "org_name": org_name,
            "jti": secrets.token_urlsafe(16),
            "iat": now,
            "nbf": start,
            "exp": end,
            "plan": entitlements.plan,
            "features": sorted(entitlements.features),
            "max_companies": entitlements.max_companies,
            "max_users": entitlements.max_users,
        }
        if instance_id is not None:
            payload["instance_id"] = instance_id
        token = jwt.encode(
            payload,
            self._key.private_key,
            algorithm=self._key.algorithm,
            headers={"kid": self._key.kid, "typ": LICENSE_TYPE},
        )
        return IssuedLicense(token=token, license=license_from_payload(payload, kid=self._key.kid))
