"""Offline license verification (LIC-1..LIC-3).

Checked in this order, every failure one :class:`~storno_security.errors.InvalidLicenseError`:
size and ASCII; three strict base64url segments; a JSON header of only ``alg``, ``kid`` and
``typ`` (``typ`` = ``license+jwt``); ``alg`` one of RS256 and EdDSA; ``kid`` one of the
configured keys; ``alg`` equal to *that key's* algorithm (so ``none``, HS256 keyed with the
public key, or RS256 against an Ed25519 key all fail); the signature, before the payload is
read; every LIC-2 claim typed; the issuer; the organization binding (``sub`` must be the
organization the license is checked for); the instance binding. Only a genuine license reaches
the clock: its verification time is recorded in the :class:`LastSeenStore`, and the license is
judged at the later of the clock's time and the last verified time, so setting the clock back
gains nothing and is reported. Expiry is never an error: the result says valid, expired in
grace, or expired (fall back to the free plan).

Dates are read within the calendar (years 1 to 9999; a number outside it is a malformed
claim), and the arithmetic on them saturates at its ends: a license whose ``exp`` is so late
that ``exp`` plus the grace period is past 9999-12-31 has its grace end there, one whose
``nbf`` is so early that the leeway reaches before year 1 is valid from the start of the
calendar. No date at an edge ever raises anything but :class:`InvalidLicenseError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Final

from jwt.algorithms import get_default_algorithms

from storno_security._jws import compact_parts, restricted_header, segment_bytes, segment_json
from storno_security.clock import Clock, ensure_aware_utc
from storno_security.errors import CorruptRecordError, InvalidLicenseError, LicenseKeyError
from storno_security.license._claims import LICENSE_TYPE, license_from_payload, reject
from storno_security.license.keys import LICENSE_ALGORITHMS, LicenseKey
from storno_security.license.model import License, LicenseState, LicenseStatus
from storno_security.license.policy import LicensePolicy
from storno_security.license.storage import LastSeenStore

__all__ = ["LicenseVerifier"]

_ALGORITHMS: Final = {name: get_default_algorithms()[name] for name in LICENSE_ALGORITHMS}
_FIRST: Final = datetime.min.replace(tzinfo=UTC)
_LAST: Final = datetime.max.replace(tzinfo=UTC)


def _shifted(moment: datetime, delta: timedelta) -> datetime:
    """``moment + delta``, held to the calendar (years 1 to 9999) instead of overflowing."""
    try:
        return moment + delta
    except OverflowError:
        return _LAST if delta > timedelta(0) else _FIRST


def _last_seen(value: object) -> datetime:
    try:
        return ensure_aware_utc(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise CorruptRecordError(
            "the last-seen store returned no aware datetime", reason="bad_datetime"
        ) from None


def _check_organization_id(name: str, value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"{name} must be a non-empty string or None")


class LicenseVerifier:
    """Verifies license tokens with public keys only; no network (LIC-1..LIC-3).

    Args:
        keys: the vendor's public keys (embedded in the application or configured).
        policy: issuer, grace period, free plan, tolerances.
        clock: the time source.
        last_seen: where the last verified time is kept (clock-rollback detection).
        instance_id: this installation's id; a license bound to another one is refused.
        organization_id: the organization this installation runs for, when it serves one: a
            license whose ``sub`` is another organization is refused. An installation serving
            several organizations leaves it ``None`` and passes ``expected_organization_id``
            to :meth:`verify` instead.
        last_seen_key: the key of this installation's time in ``last_seen``.

    Raises:
        TypeError: ``policy`` is not a :class:`LicensePolicy`, or a key is not a
            :class:`LicenseKey`.
        ValueError: no keys, or an empty ``instance_id``, ``organization_id`` or
            ``last_seen_key``.
        LicenseKeyError: two keys share one ``kid``.
    """

    def __init__(
        self,
        keys: Iterable[LicenseKey],
        policy: LicensePolicy,
        *,
        clock: Clock,
        last_seen: LastSeenStore,
        instance_id: str | None = None,
        organization_id: str | None = None,
        last_seen_key: str = "license",
    ) -> None:
        if not isinstance(policy, LicensePolicy):
            raise TypeError("policy must be a LicensePolicy")
        by_kid: dict[str, LicenseKey] = {}
        for key in keys:
            if not isinstance(key, LicenseKey):
                raise TypeError(f"keys must be LicenseKey, not {type(key).__name__}")
            if key.kid in by_kid:
                raise LicenseKeyError(f"two license keys have the kid {key.kid!r}", reason="kid")
            by_kid[key.kid] = key
        if not by_kid:
            raise ValueError("at least one license key is needed")
        if instance_id is not None and (not isinstance(instance_id, str) or not instance_id):
            raise ValueError("instance_id must be a non-empty string or None")
        _check_organization_id("organization_id", organization_id)
        if not isinstance(last_seen_key, str) or not last_seen_key:
            raise ValueError("last_seen_key must be a non-empty string")
        self._keys = by_kid
        self._policy = policy
        self._clock = clock
        self._last_seen = last_seen
        self._instance_id = instance_id
        self._organization_id = organization_id
        self._last_seen_key = last_seen_key

    def verify(self, token: str, *, expected_organization_id: str | None = None) -> LicenseStatus:
        """Verify ``token`` and judge it in time.

        The license must name, as its licensee (``sub``), the organization it is checked for:
        ``expected_organization_id``, and the verifier's ``organization_id`` when it has one
        (each one given is checked). With the policy's ``require_organization_binding`` (the
        default), at least one of them must be given.

        Args:
            token: the license token.
            expected_organization_id: the organization installing or using the license, in an
                installation serving several organizations.

        Returns:
            A :class:`LicenseStatus`: ``VALID``, ``GRACE`` ("expired, in grace") or ``EXPIRED``
            (use ``status.entitlements``, the policy's free plan), with ``clock_rollback`` set
            when the clock reads earlier than the last verified time.

        Raises:
            TypeError: ``token`` is not ``str``.
            ValueError: ``expected_organization_id`` is empty or not a str, or neither it nor
                the verifier's ``organization_id`` is given while the policy requires an
                organization binding (a programming error: decided before the token is read).
            InvalidLicenseError: the token is not a genuine license for this installation and
                organization (``reason``: ``malformed``, ``header``, ``algorithm``,
                ``unknown_key``, ``signature``, ``claim_<name>``, ``issuer``,
                ``organization_mismatch``, ``not_yet_valid``, ``instance_mismatch``,
                ``instance_required``). Never for mere expiry.
            StoreError: the last-seen store failed (``CorruptRecordError`` when what it returned
                is not an aware datetime).
        """
        if not isinstance(token, str):
            raise TypeError("token must be a str")
        _check_organization_id("expected_organization_id", expected_organization_id)
        organizations = {
            o for o in (self._organization_id, expected_organization_id) if o is not None
        }
        if not organizations and self._policy.require_organization_binding:
            raise ValueError(
                "the policy requires an organization binding: give LicenseVerifier an "
                "organization_id or verify() an expected_organization_id"
            )
        license_ = self._verify_token(token, organizations)
        policy = self._policy
        now = ensure_aware_utc(self._clock.now())
        last = _last_seen(self._last_seen.record(self._last_seen_key, now))
        checked_at = max(now, last, license_.issued_at)
        tolerance = max(policy.rollback_tolerance, policy.leeway)
        rollback = last - now > policy.rollback_tolerance or license_.issued_at - now > tolerance
        if checked_at < _shifted(license_.not_before, -policy.leeway):
            raise reject("not_yet_valid")
        grace_ends_at = _shifted(license_.expires_at, policy.grace_period)
        if checked_at < license_.expires_at:
            state = LicenseState.VALID
        elif checked_at < grace_ends_at:
            state = LicenseState.GRACE
        else:
            state = LicenseState.EXPIRED
        return LicenseStatus(
            state=state,
            license=license_,
            entitlements=policy.free_plan
            if state is LicenseState.EXPIRED
            else license_.entitlements,
            checked_at=checked_at,
            clock_time=now,
            clock_rollback=rollback,
            grace_ends_at=grace_ends_at,
        )

    def _verify_token(self, token: str, organizations: set[str]) -> License:
        header_b64, payload_b64, signature_b64 = compact_parts(
            token, max_bytes=self._policy.max_token_bytes, error=InvalidLicenseError
        )
        # jku, jwk, x5u, x5c, crit, b64, or another kind of JWT
        header = restricted_header(header_b64, InvalidLicenseError)
        if header.get("typ") != LICENSE_TYPE:
            raise reject("header")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in LICENSE_ALGORITHMS:
            raise reject("algorithm")
        kid = header.get("kid")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise reject("unknown_key")
        if alg != key.algorithm:
            raise reject("algorithm")  # the key decides, the token only agrees
        signature = segment_bytes(signature_b64, InvalidLicenseError)
        signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
        if not _ALGORITHMS[key.algorithm].verify(signing_input, key.key, signature):
            raise reject("signature")
        # Only now, with the signature checked, is the payload read.
        license_ = license_from_payload(segment_json(payload_b64, InvalidLicenseError), kid=key.kid)
        if license_.issuer != self._policy.issuer:
            raise reject("issuer")
        if any(license_.organization_id != o for o in organizations):
            raise reject("organization_mismatch")
        self._check_instance(license_)
        return license_

    def _check_instance(self, license_: License) -> None:
        bound = license_.instance_id
        if bound is None:
            if self._policy.require_instance_binding:
                raise reject("instance_required")
            return
        if bound != self._instance_id:
            raise reject("instance_mismatch")
