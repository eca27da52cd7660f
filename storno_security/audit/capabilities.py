"""Security events from the other capabilities' results and events (ACC-3).

Each function reads the object it is given **by shape** (capabilities do not import each other):
it reads the named attributes listed in its docstring, checks their types, and raises
``TypeError`` naming the attribute (never quoting a value) when the object does not fit. Only
non-secret fields are copied; an object's ``repr`` is never used, so a secret that a result
carries (a key shown once, a token) cannot reach the event through these functions.

Every function also takes the request context it cannot know: ``organization_id`` (when the
object does not name one), ``company_id``, ``ip`` and ``user_agent``; objects that carry no
time take ``at`` (use the clock the capability was given).

All raise ``ValueError`` for a field that :class:`~storno_security.audit.SecurityEvent` refuses
(an empty id, a naive time, an IP address that is not one).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

from storno_security.audit import _shape as shape
from storno_security.audit.events import (
    DETAIL_KEYS,
    Outcome,
    Scalar,
    SecurityEvent,
    SecurityEventType,
)
from storno_security.errors import InvalidMfaCodeError, RateLimitExceededError

__all__ = [
    "MAX_LISTED_KEYS",
    "event_from_api_key_event",
    "event_from_api_key_use",
    "event_from_backup_code_set",
    "event_from_error",
    "event_from_google_login",
    "event_from_license_status",
    "event_from_membership_change",
    "event_from_mfa_challenge",
    "event_from_ownership_transfer",
    "event_from_passkey_clone",
    "event_from_passkey_login",
    "event_from_passkey_registration",
    "event_from_rate_limit",
    "event_from_second_factor",
    "event_from_step_up",
    "vault_access_event",
]

#: How many key ids an API-key event lists in ``key_ids``; ``key_count`` has the total.
MAX_LISTED_KEYS: Final = 16

_API_KEY_TYPES: Final = {
    "api_key_created": SecurityEventType.API_KEY_CREATED,
    "api_key_revoked": SecurityEventType.API_KEY_REVOKED,
}
_MEMBERSHIP_TYPES: Final = {
    "add": SecurityEventType.MEMBER_ADDED,
    "update": SecurityEventType.ROLE_CHANGED,
    "remove": SecurityEventType.MEMBER_REMOVED,
}
_LICENSE_OUTCOMES: Final = {
    "valid": Outcome.SUCCESS,
    "grace": Outcome.SUCCESS,
    "expired": Outcome.FAILURE,
}


# --- API keys --------------------------------------------------------------------------------


def event_from_api_key_event(
    event: object,
    *,
    actor_id: str | None = None,
    company_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> SecurityEvent:
    """The security event for an ``ApiKeyEvent`` (``ApiKeyManager(on_event=...)``).

    Reads ``kind`` (``api_key_created`` or ``api_key_revoked``), ``user_id``, ``at``,
    ``key_ids``, ``organization_id`` and ``scope``. The key's user is the actor unless
    ``actor_id`` names someone else (an administrator revoking a member's key): then the key's
    user is the subject. Details: ``key_ids`` (at most 16, comma-separated), ``key_count``,
    ``scope``. The key itself never reaches an ``ApiKeyEvent``.

    Raises:
        TypeError: the object does not have that shape.
        ValueError: an unknown kind, or a field the event refuses.
    """
    what = "ApiKeyEvent"
    kind = shape.text(event, "kind", what)
    if kind not in _API_KEY_TYPES:
        raise ValueError("unknown API key event kind")
    key_ids = shape.member(event, "key_ids", what)
    if isinstance(key_ids, str) or not isinstance(key_ids, tuple | list):
        raise TypeError(f"{what}.key_ids must be a tuple of str")
    ids = tuple(key_ids)
    if not all(isinstance(key_id, str) and key_id for key_id in ids):
        raise TypeError(f"{what}.key_ids must hold non-empty str")
    user_id = shape.text(event, "user_id", what)
    return shape.make_event(
        _API_KEY_TYPES[kind],
        at=shape.moment(event, "at", what),
        actor_id=actor_id if actor_id is not None else user_id,
        subject_id=user_id,
        context=shape.RequestContext(
            shape.optional_text(event, "organization_id", what), company_id, ip, user_agent
        ),
        details={
            "key_ids": ",".join(ids[:MAX_LISTED_KEYS]) or None,
            "key_count": len(ids),
            "scope": shape.label(event, "scope", what, optional=True),
        },
    )


def event_from_api_key_use(
    principal: object,
    *,
    at: datetime,
    company_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> SecurityEvent:
    """A successful authentication by API key: ``LOGIN_SUCCEEDED`` with ``method="api_key"``.

    Reads an ``ApiKeyPrincipal``'s ``user_id``, ``organization_id``, ``key_id`` and ``scope``.
    Record it where your application audits key use (e.g. the first use in a period); a refused
    key is :func:`event_from_error` with ``LOGIN_FAILED``.

    Raises:
        TypeError: the object does not have that shape.
        ValueError: a field the event refuses.
    """
    what = "ApiKeyPrincipal"
    return shape.make_event(
        SecurityEventType.LOGIN_SUCCEEDED,
        at=at,
        actor_id=shape.text(principal, "user_id", what),
        context=shape.RequestContext(
            shape.text(principal, "organization_id", what), company_id, ip, user_agent
        ),
        details={
            "method": "api_key",
            "key_id": shape.text(principal, "key_id", what),
            "scope": shape.label(principal, "scope", what),
        },
    )


# --- MFA -------------------------------------------------------------------------------------


def _factor_details(factor: object, what: str) -> dict[str, Scalar]:
    method = shape.label(factor, "method", what)
    details: dict[str, Scalar] = {"method": method}
    if method == "backup_code" and hasattr(factor, "backup_codes_left"):
        details["backup_code_count"] = shape.optional_integer(factor, "backup_codes_left", what)
    return details


def event_from_mfa_challenge(
    verified: object,
    *,
    organization_id: str | None = None,
    company_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> SecurityEvent:
    """An MFA login challenge answered rightly: ``MFA_VERIFIED`` with the method.

    Reads a ``VerifiedChallenge``'s ``user_id``, ``method``, ``verified_at`` and, for a backup
    code, ``factor.backup_codes_left`` (as ``backup_code_count``: unused codes left). Record
    :func:`event_from_second_factor` too for a backup code, so ``BACKUP_CODE_USED`` is queryable.

    Raises:
        TypeError: the object does not have that shape.
        ValueError: a field the event refuses.
    """
    what = "VerifiedChallenge"
    details: dict[str, Scalar] = {"method": shape.label(verified, "method", what)}
    factor = getattr(verified, "factor", None)
    if factor is not None:
        details.update(_factor_details(factor, "VerifiedChallenge.factor"))
    details["purpose"] = "login"
    return shape.make_event(
        SecurityEventType.MFA_VERIFIED,
        at=shape.moment(verified, "verified_at", what),
        actor_id=shape.text(verified, "user_id", what),
        context=shape.RequestContext(organization_id, company_id, ip, user_agent),
        details=details,
    )


def event_from_second_factor(
    factor: object,
    *,
    organization_id: str | None = None,
    company_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> SecurityEvent:
    """A second factor that passed (a ``VerifiedFactor``): ``BACKUP_CODE_USED`` for a backup
    code (with ``backup_code_count``, the unused codes left), ``MFA_VERIFIED`` otherwise.

    Reads ``user_id``, ``method``, ``verified_at`` and ``backup_codes_left``. The TOTP step is
    not copied.

    Raises:
        TypeError: the object does not have that shape.
        ValueError: a field the event refuses.
    """
    what = "VerifiedFactor"
    details = _factor_details(factor, what)
    event_type = (
        SecurityEventType.BACKUP_CODE_USED
        if details["method"] == "backup_code"
        else SecurityEventType.MFA_VERIFIED
    )
    return shape.make_event(
        event_type,
        at=shape.moment(factor, "verified_at", what),
        actor_id=shape.text(factor, "user_id", what),
        context=shape.RequestContext(organization_id, company_id, ip, user_agent),
        details=details,
    )


def event_from_backup_code_set(
    codes: object,
    *,
    at: datetime,
    organization_id: str | None = None,
    company_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> SecurityEvent:
    """A new set of backup codes: ``BACKUP_CODES_REGENERATED`` with ``backup_code_count``.

    Reads a ``BackupCodeSet``'s ``user_id`` and the *number* of its ``codes``; never a code.

    Raises:
        TypeError: the object does not have that shape.
        ValueError: a field the event refuses.
    """
    what = "BackupCodeSet"
    values = shape.member(codes, "codes", what)
    if isinstance(values, str) or not isinstance(values, tuple | list):
        raise TypeError(f"{what}.codes must be a tuple")
    return shape.make_event(
        SecurityEventType.BACKUP_CODES_REGENERATED,
        at=at,
        actor_id=shape.text(codes, "user_id", what),
        context=shape.RequestContext(organization_id, company_id, ip, user_agent),
        details={"backup_code_count": len(values)},
    )


def event_from_step_up(
    verified: object,
    *,
    organization_id: str | None = None,
    company_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> SecurityEvent:
    """A step-up token used for a sensitive action: ``STEP_UP_VERIFIED``.

    Reads a ``VerifiedStepUp``'s ``user_id``, ``action``, ``method`` and ``used_at``.

    Raises:
        TypeError: the object does not have that shape.
        ValueError: a field the event refuses.
    """
    what = "VerifiedStepUp"
    return shape.make_event(
        SecurityEventType.STEP_UP_VERIFIED,
        at=shape.moment(verified, "used_at", what),
        actor_id=shape.text(verified, "user_id", what),
        context=shape.RequestContext(organization_id, company_id, ip, user_agent),
        details={
            "action": shape.label(verified, "action", what),
            "method": shape.label(verified, "method", what),
        },
    )


# --- passkeys --------------------------------------------------------------------------------


def event_from_passkey_registration(
    credential: object,
    *,
    organization_id: str | None = None,
    company_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> SecurityEvent:
    """A passkey registered: ``PASSKEY_REGISTERED``.

    Reads a ``PasskeyCredential``'s ``user_id``, ``created_at``, ``credential_id`` (copied as
    its SHA-256, ``credential_id``, the key stores use), ``aaguid`` and ``backup_eligible``.
    The public key, the user handle and the user-chosen name are not copied.

    Raises:
        TypeError: the object does not have that shape.
        ValueError: a field the event refuses.
    """
    what = "PasskeyCredential"
    return shape.make_event(
        SecurityEventType.PASSKEY_REGISTERED,
        at=shape.moment(credential, "created_at", what),
        actor_id=shape.text(credential, "user_id", what),
        context=shape.RequestContext(organization_id, company_id, ip, user_agent),
        details={
            "method": "passkey",
            "credential_id": shape.fingerprint(shape.raw_bytes(credential, "credential_id", what)),
            "aaguid": shape.label(credential, "aaguid", what),
            "backup_eligible": shape.flag(credential, "backup_eligible", what),
        },
    )


def event_from_passkey_login(
    login: object,
    *,
    second_factor: bool = False,
    organization_id: str | None = None,
    company_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> SecurityEvent:
    """A verified passkey assertion: ``LOGIN_SUCCEEDED`` (``method="passkey"``), or
    ``MFA_VERIFIED`` when ``second_factor`` (the passkey answered an MFA challenge).

    Reads a ``VerifiedPasskeyLogin``'s ``user_id``, ``credential_id`` (copied as its SHA-256),
    ``used_at``, ``sign_count``, ``backed_up`` and ``satisfies_mfa``.

    Raises:
        TypeError: the object does not have that shape.
        ValueError: a field the event refuses.
    """
    what = "VerifiedPasskeyLogin"
    return shape.make_event(
        SecurityEventType.MFA_VERIFIED if second_factor else SecurityEventType.LOGIN_SUCCEEDED,
        at=shape.moment(login, "used_at", what),
        actor_id=shape.text(login, "user_id", what),
        context=shape.RequestContext(organization_id, company_id, ip, user_agent),
        details={
            "method": "passkey",
            "credential_id": shape.fingerprint(shape.raw_bytes(login, "credential_id", what)),
            "sign_count": shape.integer(login, "sign_count", what),
            "backed_up": shape.flag(login, "backed_up", what),
            "satisfies_mfa": shape.flag(login, "satisfies_mfa", what),
        },
    )


def event_from_passkey_clone(
    error: object,
    *,
    at: datetime,
    organization_id: str | None = None,
    company_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> SecurityEvent:
    """A sign count that did not grow (``PasskeyCloneSuspectedError``): the credential is
    flagged. ``PASSKEY_CLONE_SUSPECTED``, a failure, with the credential's SHA-256.

    Reads the error's ``user_id`` and ``credential_id``.

    Raises:
        TypeError: the object does not have that shape.
        ValueError: a field the event refuses.
    """
    what = "PasskeyCloneSuspectedError"
    return shape.make_event(
        SecurityEventType.PASSKEY_CLONE_SUSPECTED,
        at=at,
        outcome=Outcome.FAILURE,
        actor_id=shape.text(error, "user_id", what),
        context=shape.RequestContext(organization_id, company_id, ip, user_agent),
        details={
            "method": "passkey",
            "credential_id": shape.fingerprint(shape.raw_bytes(error, "credential_id", what)),
            "reason": "sign_count",
        },
    )


# --- Google login ----------------------------------------------------------------------------


def event_from_google_login(
    identity: object,
    *,
    at: datetime,
    actor_id: str | None,
    organization_id: str | None = None,
    company_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> SecurityEvent:
    """A verified Google ID token: ``LOGIN_SUCCEEDED`` with ``method="google"``.

    ``actor_id`` is your user linked to the Google subject (``None`` before an account exists).
    Reads a ``GoogleIdentity``'s ``hosted_domain`` and ``audience`` (the client id) only: the
    email, name and Google subject are personal data that pseudonymisation would not rewrite in
    details, and the ID token never reaches the identity.

    Raises:
        TypeError: the object does not have that shape.
        ValueError: a field the event refuses.
    """
    what = "GoogleIdentity"
    return shape.make_event(
        SecurityEventType.LOGIN_SUCCEEDED,
        at=at,
        actor_id=actor_id,
        context=shape.RequestContext(organization_id, company_id, ip, user_agent),
        details={
            "method": "google",
            "hosted_domain": shape.label(identity, "hosted_domain", what, optional=True),
            "audience": shape.label(identity, "audience", what),
        },
    )


# --- vault -----------------------------------------------------------------------------------


def vault_access_event(
    action: Literal["read", "write"],
    *,
    at: datetime,
    actor_id: str | None,
    secret_name: str,
    vault_key_id: str | None = None,
    error: BaseException | None = None,
    organization_id: str | None = None,
    company_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> SecurityEvent:
    """A vault secret read (``VAULT_ACCESSED``) or written (``VAULT_UPDATED``), given ids only.

    Args:
        action: ``read`` (opened) or ``write`` (sealed or re-sealed).
        at: when.
        actor_id: who.
        secret_name: which secret, as a short label (``s3_secret``, ``smtp_password``); text
            outside ``[A-Za-z0-9_.:/-]`` or longer than 100 characters is refused, and details
            refuse secret-shaped values; still, never pass the secret itself.
        vault_key_id: the ``kid`` of the vault key used, if wanted.
        error: the library error when the access failed (e.g. ``InvalidCiphertextError``):
            the event is then a failure with its ``reason``.
        organization_id: the organization.
        company_id: the company whose secret it is.
        ip: the client address.
        user_agent: the client's ``User-Agent``.

    Raises:
        TypeError: ``error`` is not a library error, or a label is not a str of that form.
        ValueError: an unknown action, or a field the event refuses.
    """
    if action not in ("read", "write"):
        raise ValueError("action must be 'read' or 'write'")
    labels = {"secret_name": secret_name, "vault_key_id": vault_key_id}
    for name, value in labels.items():
        if value is not None:
            shape.check_label(value, name)
    details: dict[str, Scalar] = {"action": action, **labels}
    outcome = Outcome.SUCCESS
    if error is not None:
        details["reason"] = shape.reason_of(error)
        outcome = Outcome.FAILURE
    return shape.make_event(
        SecurityEventType.VAULT_ACCESSED if action == "read" else SecurityEventType.VAULT_UPDATED,
        at=at,
        outcome=outcome,
        actor_id=actor_id,
        context=shape.RequestContext(organization_id, company_id, ip, user_agent),
        details=details,
    )


# --- license ---------------------------------------------------------------------------------


def event_from_license_status(
    status: object,
    *,
    actor_id: str | None = None,
    organization_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> SecurityEvent:
    """A license check: ``LICENSE_CHECKED``, a success while ``valid`` or in ``grace``, a
    failure once ``expired``.

    Reads a ``LicenseStatus``'s ``state``, ``clock_time`` (the event's time), ``clock_rollback``
    and ``license.license_id``, ``license.organization_id`` (the event's organization unless
    ``organization_id`` is given) and ``license.entitlements.plan``. The token is never part
    of the status; the signing key's id (a thumbprint) is not copied.

    Raises:
        TypeError: the object does not have that shape.
        ValueError: an unknown state, or a field the event refuses.
    """
    what = "LicenseStatus"
    state = shape.label(status, "state", what)
    if state not in _LICENSE_OUTCOMES:
        raise ValueError("unknown license state")
    lic = shape.member(status, "license", what)
    entitlements = shape.member(lic, "entitlements", "License")
    return shape.make_event(
        SecurityEventType.LICENSE_CHECKED,
        at=shape.moment(status, "clock_time", what),
        outcome=_LICENSE_OUTCOMES[state],
        actor_id=actor_id,
        context=shape.RequestContext(
            organization_id
            if organization_id is not None
            else shape.text(lic, "organization_id", "License"),
            ip=ip,
            user_agent=user_agent,
        ),
        details={
            "state": state,
            "license_id": shape.label(lic, "license_id", "License"),
            "plan": shape.label(entitlements, "plan", "Entitlements"),
            "clock_rollback": shape.flag(status, "clock_rollback", what),
        },
    )


# --- memberships -----------------------------------------------------------------------------


def event_from_membership_change(
    change: object,
    *,
    at: datetime,
    company_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> SecurityEvent:
    """An allowed membership change: ``MEMBER_ADDED``, ``ROLE_CHANGED`` or ``MEMBER_REMOVED``.

    Reads a ``MembershipChange``'s ``action``, ``actor_user_id``, ``before`` and ``after``
    (each membership's ``user_id``, ``organization_id``, ``role`` and whether ``permissions``
    is a custom set). The acting member is the actor, the member changed the subject.

    Raises:
        TypeError: the object does not have that shape.
        ValueError: an unknown action, or a field the event refuses.
    """
    what = "MembershipChange"
    action = shape.label(change, "action", what)
    if action not in _MEMBERSHIP_TYPES:
        raise ValueError("unknown membership action")
    after = shape.member(change, "after", what)
    before = getattr(change, "before", None)
    details: dict[str, Scalar] = {
        "role": shape.label(after, "role", "Membership"),
        "custom_permissions": getattr(after, "permissions", None) is not None,
    }
    if before is not None:
        details["previous_role"] = shape.label(before, "role", "Membership")
    return shape.make_event(
        _MEMBERSHIP_TYPES[action],
        at=at,
        actor_id=shape.text(change, "actor_user_id", what),
        subject_id=shape.text(after, "user_id", "Membership"),
        context=shape.RequestContext(
            shape.text(after, "organization_id", "Membership"), company_id, ip, user_agent
        ),
        details=details,
    )


def event_from_ownership_transfer(
    transfer: object,
    *,
    at: datetime,
    ip: str | None = None,
    user_agent: str | None = None,
) -> SecurityEvent:
    """An ownership transfer: ``OWNERSHIP_TRANSFERRED``; the former owner is the actor, the
    new owner the subject.

    Reads an ``OwnershipTransfer``'s ``former_owner`` and ``new_owner`` (``user_id``,
    ``organization_id``); ``former_owner_role`` is the former owner's new role.

    Raises:
        TypeError: the object does not have that shape.
        ValueError: the two memberships are of different organizations, or a field the event
            refuses.
    """
    what = "OwnershipTransfer"
    former = shape.member(transfer, "former_owner", what)
    new = shape.member(transfer, "new_owner", what)
    organization_id = shape.text(former, "organization_id", "Membership")
    if shape.text(new, "organization_id", "Membership") != organization_id:
        raise ValueError("an ownership transfer stays within one organization")
    return shape.make_event(
        SecurityEventType.OWNERSHIP_TRANSFERRED,
        at=at,
        actor_id=shape.text(former, "user_id", "Membership"),
        subject_id=shape.text(new, "user_id", "Membership"),
        context=shape.RequestContext(organization_id, ip=ip, user_agent=user_agent),
        details={"former_owner_role": shape.label(former, "role", "Membership")},
    )


# --- rate limiting ---------------------------------------------------------------------------


def event_from_rate_limit(
    refusal: object,
    *,
    at: datetime,
    actor_id: str | None = None,
    organization_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> SecurityEvent:
    """A request refused by a rate limit: ``RATE_LIMITED``, a failure.

    ``refusal`` is the ``RateLimitExceededError`` or its ``status`` (a ``RateLimitStatus``):
    ``policy``, ``limit`` and ``retry_after`` are copied. Nothing of the refused request is.

    Raises:
        TypeError: the object does not have that shape.
        ValueError: a field the event refuses.
    """
    status = refusal.status if isinstance(refusal, RateLimitExceededError) else refusal
    what = "RateLimitStatus"
    return shape.make_event(
        SecurityEventType.RATE_LIMITED,
        at=at,
        outcome=Outcome.FAILURE,
        actor_id=actor_id,
        context=shape.RequestContext(organization_id, ip=ip, user_agent=user_agent),
        details={
            "policy": shape.label(status, "policy", what),
            "limit": shape.integer(status, "limit", what),
            "retry_after": shape.integer(status, "retry_after", what),
        },
    )


# --- failures --------------------------------------------------------------------------------


def event_from_error(
    event_type: SecurityEventType,
    error: BaseException,
    *,
    at: datetime,
    method: str | None = None,
    actor_id: str | None = None,
    organization_id: str | None = None,
    company_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> SecurityEvent:
    """A failed attempt, from the library error that refused it: a failure event of
    ``event_type`` (``LOGIN_FAILED``, ``MFA_FAILED``, ``LICENSE_CHECKED``...).

    Copies the error's ``reason`` only (never its message, arguments or ``repr``), and for an
    ``InvalidMfaCodeError`` against a challenge its ``attempts_left`` (when ``event_type``
    records it, see :data:`~storno_security.audit.DETAIL_KEYS`). ``method`` names the
    credential tried (``password``, ``api_key``, ``google``, ``passkey``, ``totp``...).

    Raises:
        TypeError: ``error`` is not a library error (``StornoSecurityError``), or ``method``
            is not a short label.
        ValueError: a field the event refuses.
    """
    details: dict[str, Scalar] = {"reason": shape.reason_of(error)}
    if method is not None:
        details["method"] = shape.check_label(method, "method")
    if (
        isinstance(error, InvalidMfaCodeError)
        and isinstance(error.attempts_left, int)
        and "attempts_left" in DETAIL_KEYS[event_type]
    ):
        details["attempts_left"] = error.attempts_left
    return shape.make_event(
        event_type,
        at=at,
        outcome=Outcome.FAILURE,
        actor_id=actor_id,
        context=shape.RequestContext(organization_id, company_id, ip, user_agent),
        details=details,
    )
