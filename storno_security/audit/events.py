"""Security events: a closed set of types, a frozen record, and details that cannot hold a
secret (ACC-3).

An event says who did what, where and when, and how it ended: actor, organization, company, IP
address, user agent, time (aware UTC), outcome, and a small mapping of non-secret details.
Details are checked when the event is made: a key named like a secret (``password``,
``token``, ``secret``, ``code``, ``key``...) or a value shaped like one of our secrets (a JWT,
an ``af_`` API key, a long random string) raises ``ValueError``, so a careless caller fails in
tests instead of leaking a credential into the audit trail.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

import attrs

from storno_security.clock import ensure_aware_utc

__all__ = [
    "MAX_DETAIL_KEYS",
    "MAX_TEXT_VALUE",
    "Outcome",
    "Scalar",
    "SecurityEvent",
    "SecurityEventType",
    "looks_like_secret",
    "secret_key_name",
    "validate_details",
]

#: A detail value: text, a number, a truth value or nothing.
Scalar = str | int | float | bool | None

#: The most details an event may carry.
MAX_DETAIL_KEYS: Final = 32
#: The longest text detail value, in characters.
MAX_TEXT_VALUE: Final = 1024
_MAX_USER_AGENT: Final = 512
_MAX_ID: Final = 255
_INT_RANGE: Final = 2**63


class SecurityEventType(enum.StrEnum):
    """What happened. The set is closed: a new kind of event is a new release."""

    REGISTERED = "account.registered"
    LOGIN_SUCCEEDED = "login.succeeded"
    LOGIN_FAILED = "login.failed"
    LOGOUT = "session.logout"
    TOKEN_REFRESHED = "session.refreshed"  # noqa: S105 - an event name
    TOKEN_REUSE_DETECTED = "session.token_reuse_detected"  # noqa: S105 - an event name
    SESSIONS_REVOKED = "session.all_revoked"
    MFA_ENABLED = "mfa.enabled"
    MFA_DISABLED = "mfa.disabled"
    MFA_VERIFIED = "mfa.verified"
    MFA_FAILED = "mfa.failed"
    BACKUP_CODE_USED = "mfa.backup_code_used"
    BACKUP_CODES_REGENERATED = "mfa.backup_codes_regenerated"
    STEP_UP_VERIFIED = "mfa.step_up_verified"
    PASSWORD_CHANGED = "password.changed"  # noqa: S105 - an event name
    PASSWORD_RESET_REQUESTED = "password.reset_requested"  # noqa: S105 - an event name
    PASSWORD_RESET = "password.reset"  # noqa: S105 - an event name
    API_KEY_CREATED = "api_key.created"
    API_KEY_REVOKED = "api_key.revoked"
    PASSKEY_REGISTERED = "passkey.registered"
    PASSKEY_REMOVED = "passkey.removed"
    PASSKEY_CLONE_SUSPECTED = "passkey.clone_suspected"
    ROLE_CHANGED = "member.role_changed"
    MEMBER_ADDED = "member.added"
    MEMBER_REMOVED = "member.removed"
    OWNERSHIP_TRANSFERRED = "org.ownership_transferred"
    ACCESS_DENIED = "access.denied"
    VAULT_ACCESSED = "vault.accessed"
    VAULT_UPDATED = "vault.updated"
    LICENSE_CHECKED = "license.checked"
    DATA_EXPORTED = "data.exported"
    ACCOUNT_DELETION_REQUESTED = "account.deletion_requested"
    ACCOUNT_DELETED = "account.deleted"
    RATE_LIMITED = "rate_limit.exceeded"


class Outcome(enum.StrEnum):
    """How the attempt ended."""

    SUCCESS = "success"
    FAILURE = "failure"


# --- secrets in details ----------------------------------------------------------------------

_KEY_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
#: Word stems that name a secret; a detail key holding one is refused.
_SECRET_STEMS: Final = (
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "token",
    "key",
    "code",
    "otp",
    "credential",
    "cookie",
    "authorization",
    "bearer",
    "signature",
    "private",
    "salt",
    "seed",
)
#: A key whose last word is one of these names a non-secret attribute of a secret
#: (``key_id``, ``token_type``, ``backup_code_count``): allowed, its value is still checked.
_SAFE_LAST_WORDS: Final = frozenset(
    {"id", "ids", "count", "type", "kind", "name", "scope", "scopes", "version", "length"}
)

_JWT_RE: Final = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.")
_API_KEY_RE: Final = re.compile(r"(?<![A-Za-z0-9])af_[A-Za-z0-9_-]{16,}", re.IGNORECASE)
_RUN_RE: Final = re.compile(r"[A-Za-z0-9+/_=-]{24,}")
_HEX_RUN_RE: Final = re.compile(r"[0-9A-Fa-f-]+")
_BASE32_RE: Final = re.compile(r"[A-Z2-7]{24,}={0,6}")


def secret_key_name(name: str) -> bool:
    """Whether a detail key names a secret (``password``, ``mfa_token``, ``apikey``...).

    A name is split into words at ``_``; it names a secret when a word contains a secret stem,
    unless its last word says it is an attribute (``key_id``, ``token_type``, ``code_count``).
    """
    words = name.lower().split("_")
    if words[-1] in _SAFE_LAST_WORDS:
        return False
    return any(stem in word for word in words for stem in _SECRET_STEMS)


def _random_run(run: str) -> bool:
    if _HEX_RUN_RE.fullmatch(run) and (run.islower() or run.isupper() or run.isdigit()):
        return False  # ids and digests: hex of one case, UUIDs
    if _BASE32_RE.fullmatch(run):
        return True  # TOTP secrets
    # base64/base64url of random bytes: both cases, with near certainty from 24 characters
    return any(c.isupper() for c in run) and any(c.islower() for c in run)


def looks_like_secret(value: str) -> bool:
    """Whether text looks like one of our secrets: a JWT, an ``af_`` API key, or a long random
    string (a run of 24 or more base64/base64url characters in both cases, or of base32
    like a TOTP secret).

    Hex strings and UUIDs (ids, digests) do not count: they are how events name things.
    """
    if _JWT_RE.search(value) or _API_KEY_RE.search(value):
        return True
    return any(_random_run(run) for run in _RUN_RE.findall(value))


def _check_value(name: str, value: object) -> Scalar:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -_INT_RANGE <= value < _INT_RANGE:
            raise ValueError(f"detail {name!r} is out of the 64-bit range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"detail {name!r} must be finite")
        return value
    if isinstance(value, str):
        if len(value) > MAX_TEXT_VALUE:
            raise ValueError(f"detail {name!r} is longer than {MAX_TEXT_VALUE} characters")
        if looks_like_secret(value):
            # never echo the value: it may be the secret
            raise ValueError(f"detail {name!r} looks like a secret (token, key or random string)")
        return value
    raise ValueError(f"detail {name!r} must be a str, int, float, bool or None")


def validate_details(details: Mapping[str, object] | None) -> Mapping[str, Scalar]:
    """Check event details and return them as a read-only mapping sorted by key.

    Raises:
        TypeError: ``details`` is not a mapping.
        ValueError: too many keys; a key that is not lower-case snake case of at most 64
            characters or that names a secret; a value that is not a scalar, is too long, is
            not finite, or looks like a secret. The message names the key, never the value.
    """
    if details is None:
        return MappingProxyType({})
    if not isinstance(details, Mapping):
        raise TypeError("details must be a mapping of str to scalars")
    if len(details) > MAX_DETAIL_KEYS:
        raise ValueError(f"at most {MAX_DETAIL_KEYS} details")
    checked: dict[str, Scalar] = {}
    for name in sorted(details, key=str):
        if not isinstance(name, str) or not _KEY_RE.fullmatch(name):
            raise ValueError("detail keys must be lower-case snake case, at most 64 characters")
        if secret_key_name(name):
            raise ValueError(f"detail key {name!r} names a secret: details never hold secrets")
        checked[name] = _check_value(name, details[name])
    return MappingProxyType(checked)


# --- the record ------------------------------------------------------------------------------


def _optional_id(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise TypeError(f"{attribute.name} must be a str or None")
    if not value or len(value) > _MAX_ID or "\x00" in value:
        raise ValueError(f"{attribute.name} must be 1 to {_MAX_ID} characters without NUL")


def _event_id(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{32}", value):
        raise ValueError("event_id must be 32 lower-case hex characters")


def _ip(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("ip must be a str or None")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError("ip must be an IPv4 or IPv6 address") from None


def _user_agent(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("user_agent must be a str or None")
    # Not a secret, and attacker-chosen: keep the event, clip the header.
    cleaned = "".join(c if c.isprintable() else "?" for c in value[:_MAX_USER_AGENT])
    return cleaned or None


def _time(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError("at must be a datetime")
    return ensure_aware_utc(value)


def _event_type(value: object) -> SecurityEventType:
    if isinstance(value, SecurityEventType):
        return value
    if not isinstance(value, str):
        raise TypeError("type must be a SecurityEventType")
    try:
        return SecurityEventType(value)
    except ValueError:
        raise ValueError("unknown security event type") from None


def _outcome(value: object) -> Outcome:
    if isinstance(value, Outcome):
        return value
    if not isinstance(value, str):
        raise TypeError("outcome must be an Outcome")
    try:
        return Outcome(value)
    except ValueError:
        raise ValueError("unknown outcome") from None


def _new_event_id() -> str:
    return uuid.uuid4().hex


@attrs.frozen(kw_only=True)
class SecurityEvent:
    """One security event (ACC-3). Never holds a secret.

    Attributes:
        type: what happened (a closed set).
        at: when (aware; stored as UTC).
        outcome: success or failure.
        actor_id: the user who acted, or ``None`` (an unknown email at login).
        subject_id: the user acted upon when it is not the actor (a member whose role changed),
            or ``None``.
        organization_id: the organization concerned, or ``None``.
        company_id: the company concerned, or ``None``.
        ip: the client address, normalised (``::1``), or ``None``.
        user_agent: the client's ``User-Agent``, at most 512 printable characters (longer
            headers are clipped, not refused: the event matters more), or ``None``.
        details: non-secret details, checked by :func:`validate_details`.
        event_id: 32 hex characters, random by default; unique in a store.

    Raises:
        TypeError: a field has the wrong type.
        ValueError: a naive time, an unknown type or outcome, a malformed id or IP address,
            or details that break :func:`validate_details`.
    """

    type: SecurityEventType = attrs.field(converter=_event_type)
    at: datetime = attrs.field(converter=_time)
    outcome: Outcome = attrs.field(default=Outcome.SUCCESS, converter=_outcome)
    actor_id: str | None = attrs.field(default=None, validator=_optional_id)
    subject_id: str | None = attrs.field(default=None, validator=_optional_id)
    organization_id: str | None = attrs.field(default=None, validator=_optional_id)
    company_id: str | None = attrs.field(default=None, validator=_optional_id)
    ip: str | None = attrs.field(default=None, converter=_ip)
    user_agent: str | None = attrs.field(default=None, converter=_user_agent)
    details: Mapping[str, Scalar] = attrs.field(
        factory=dict, converter=validate_details, hash=False
    )
    event_id: str = attrs.field(factory=_new_event_id, validator=_event_id)
