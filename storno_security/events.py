"""Security events: a closed set of types, a frozen record, details that cannot hold a secret
or personal data (ACC-3, ACC-4), the sink they are reported to, and the request context that
fills their client fields.

This is a shared module: every capability and the kit may import it. Flows report what happened
to one :class:`EventSink` handed in once (the audit log is one); the client's address, user
agent and request id reach every event through :func:`request_context` (a context variable), so
no call has to thread them through.

An event says who did what, where and when, and how it ended: actor, organization, company, IP
address, user agent, time (aware UTC), outcome, and a small mapping of details. Details are
checked when the event is made, and ``ValueError`` is raised for: a key outside the closed set
of its event type (:data:`DETAIL_KEYS`); a key naming personal data (``email``, ``name``,
``user_id``...: people are the actor or the subject, which pseudonymisation rewrites) or a
secret (``password``, ``token``, ``pin``...); a value holding an email address, a control
character, or something shaped like one of our secrets (a JWT, an ``af_`` API key, long hex, a
long random string). A careless caller fails in tests instead of leaking a credential or
personal data into the audit trail, where it would outlive the account.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import math
import re
import unicodedata
import uuid
from collections.abc import Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Protocol, cast, runtime_checkable

import attrs

from storno_security.clock import ensure_aware_utc

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "DETAIL_KEYS",
    "ID_DETAIL_KEYS",
    "MAX_DETAIL_KEYS",
    "MAX_TEXT_VALUE",
    "EventSink",
    "FanOutSink",
    "Outcome",
    "RequestContext",
    "Scalar",
    "SecurityEvent",
    "SecurityEventType",
    "current_request_context",
    "enter_request_context",
    "leave_request_context",
    "looks_like_secret",
    "personal_key_name",
    "request_context",
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
    EMAIL_CONFIRMED = "account.email_confirmed"
    GOOGLE_LINKED = "account.google_linked"
    REAUTHENTICATED = "account.reauthenticated"
    INVITATION_SENT = "member.invited"
    INVITATION_ACCEPTED = "member.invitation_accepted"
    INVITATION_DECLINED = "member.invitation_declined"
    INVITATION_WITHDRAWN = "member.invitation_withdrawn"
    MFA_LOCKOUT_CLEARED = "mfa.lockout_cleared"


class Outcome(enum.StrEnum):
    """How the attempt ended."""

    SUCCESS = "success"
    FAILURE = "failure"


# --- which details each event type records ---------------------------------------------------

_E = SecurityEventType
#: Details every event type may carry: how the attempt was made, and why it ended so.
_COMMON: Final = frozenset({"method", "reason"})
#: Details of MFA events: the unused backup codes left, and the tries left on a challenge.
_MFA: Final = frozenset({"backup_code_count", "attempts_left"})
_SESSIONS: Final = frozenset({"session_id", "session_ids", "session_count"})
_PASSKEY: Final = frozenset({"credential_id", "sign_count", "backed_up", "satisfies_mfa"})
_API_KEY: Final = frozenset({"key_id", "key_ids", "key_count", "scope"})
_MEMBERSHIP: Final = frozenset({"role", "previous_role", "custom_permissions"})
_VAULT: Final = frozenset({"action", "secret_name", "vault_key_id"})

_EXTRA: Final[dict[SecurityEventType, frozenset[str]]] = {
    _E.REGISTERED: frozenset(),
    _E.LOGIN_SUCCEEDED: frozenset(
        {"key_id", "scope", "session_id", "hosted_domain", "audience"} | _PASSKEY
    ),
    _E.LOGIN_FAILED: frozenset({"attempts_left"}),
    _E.LOGOUT: _SESSIONS,
    _E.TOKEN_REFRESHED: _SESSIONS,
    _E.TOKEN_REUSE_DETECTED: _SESSIONS,
    _E.SESSIONS_REVOKED: _SESSIONS,
    _E.MFA_ENABLED: _MFA,
    _E.MFA_DISABLED: _MFA,
    _E.MFA_VERIFIED: _MFA | _PASSKEY | {"purpose"},
    _E.MFA_FAILED: _MFA,
    _E.BACKUP_CODE_USED: _MFA,
    _E.BACKUP_CODES_REGENERATED: frozenset({"backup_code_count"}),
    _E.STEP_UP_VERIFIED: frozenset({"action", "attempts_left"}),
    _E.PASSWORD_CHANGED: frozenset({"session_count"}),
    _E.PASSWORD_RESET_REQUESTED: frozenset(),
    _E.PASSWORD_RESET: frozenset({"session_count"}),
    _E.API_KEY_CREATED: _API_KEY,
    _E.API_KEY_REVOKED: _API_KEY,
    _E.PASSKEY_REGISTERED: frozenset({"credential_id", "aaguid", "backup_eligible"}),
    _E.PASSKEY_REMOVED: frozenset({"credential_id"}),
    _E.PASSKEY_CLONE_SUSPECTED: frozenset({"credential_id"}),
    _E.ROLE_CHANGED: _MEMBERSHIP,
    _E.MEMBER_ADDED: _MEMBERSHIP,
    _E.MEMBER_REMOVED: _MEMBERSHIP,
    _E.OWNERSHIP_TRANSFERRED: frozenset({"former_owner_role"}),
    _E.ACCESS_DENIED: frozenset({"permission", "action", "resource"}),
    _E.VAULT_ACCESSED: _VAULT,
    _E.VAULT_UPDATED: _VAULT,
    _E.LICENSE_CHECKED: frozenset({"state", "license_id", "plan", "clock_rollback"}),
    _E.DATA_EXPORTED: frozenset({"format", "record_count"}),
    _E.ACCOUNT_DELETION_REQUESTED: frozenset({"grace_days"}),
    _E.ACCOUNT_DELETED: frozenset({"record_count"}),
    _E.RATE_LIMITED: frozenset({"policy", "limit", "retry_after"}),
    _E.EMAIL_CONFIRMED: frozenset(),
    _E.GOOGLE_LINKED: frozenset({"hosted_domain"}),
    _E.REAUTHENTICATED: frozenset({"action", "attempts_left"}),
    _E.INVITATION_SENT: _MEMBERSHIP | {"invitation_id"},
    _E.INVITATION_ACCEPTED: _MEMBERSHIP | {"invitation_id"},
    _E.INVITATION_DECLINED: frozenset({"invitation_id"}),
    _E.INVITATION_WITHDRAWN: frozenset({"invitation_id"}),
    _E.MFA_LOCKOUT_CLEARED: frozenset(),
}

#: The closed set of detail keys each event type may carry (ACC-3, ACC-4). A key outside its
#: type's set is refused, so what the trail can hold is reviewable here and in the docs. None
#: names a person: people are ``actor_id`` and ``subject_id``, which pseudonymisation rewrites.
DETAIL_KEYS: Final[Mapping[SecurityEventType, frozenset[str]]] = MappingProxyType(
    {event_type: _COMMON | _EXTRA[event_type] for event_type in SecurityEventType}
)
#: The detail keys whose values are ids: only under these may hex strings and UUIDs of 32 or
#: more hex digits appear (session ids, SHA-256 credential ids, key ids, AAGUIDs).
ID_DETAIL_KEYS: Final = frozenset(
    {"aaguid", "credential_id", "key_id", "key_ids", "license_id", "session_id", "session_ids"}
    | {"vault_key_id", "invitation_id"}
)

# --- secrets and personal data in details ----------------------------------------------------

_KEY_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
#: Word stems that name a secret: a detail key with a word containing one names a secret.
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
    "recovery",
)
#: Short names of secrets, matched as whole words only (``pin`` but not ``spinner``).
_SECRET_WORDS: Final = frozenset({"pass", "pw", "pin", "pins", "mfa", "2fa", "cvv", "auth"})

#: Word stems naming personal data (contact details, names, birth dates).
_PERSONAL_STEMS: Final = (
    "mail",
    "phone",
    "mobile",
    "address",
    "username",
    "firstname",
    "lastname",
    "surname",
    "fullname",
    "nickname",
    "displayname",
    "birth",
)
#: Words naming a person (whose id belongs in ``actor_id``/``subject_id``).
_PERSON_WORDS: Final = frozenset(
    {"user", "users", "userid", "userids", "uid", "uids", "member", "members", "account"}
    | {"accounts", "person", "people", "customer", "customers", "dob", "ssn", "sub"}
)
#: Words naming a party: personal when they name the person itself (``owner``, ``owner_id``,
#: ``owner_name``), not when they name an attribute of theirs (``former_owner_role``).
_PARTY_WORDS: Final = frozenset(
    {"owner", "actor", "subject", "sender", "recipient", "contact", "holder", "licensee"}
    | {"invitee", "inviter", "assignee"}
)
_PARTY_FOLLOWERS: Final = frozenset({"id", "ids", "name", "names"})
#: Words that make a following ``name`` a person's name.
_NAME_QUALIFIERS: Final = _PERSON_WORDS | _PARTY_WORDS | {"display", "first", "last", "full"}
_NAME_QUALIFIERS_MORE: Final = frozenset({"given", "family", "middle", "nick", "real", "legal"})


def secret_key_name(name: str) -> bool:
    """Whether a detail key names a secret (``password``, ``mfa_token``, ``apikey``, ``pin``...).

    A name is split into words at ``_``; it names a secret when a word contains a secret stem
    or is a short secret name (``pass``, ``pw``, ``pin``, ``mfa``). A last word such as ``id``
    or ``count`` does not make it safe: ``password_id`` names a secret. Keys of
    :data:`DETAIL_KEYS` that name a secret's attribute (``key_id``, ``backup_code_count``) are
    allowed there, for their event types only.
    """
    words = name.lower().split("_")
    return any(
        word in _SECRET_WORDS or any(stem in word for stem in _SECRET_STEMS) for word in words
    )


def personal_key_name(name: str) -> bool:
    """Whether a detail key names personal data: an email, phone, address or name, or a person
    (``user``, ``user_id``, ``member``, ``account_id``, ``owner``...).

    Details outlive account deletion (only ``actor_id``, ``subject_id``, the IP address and the
    user agent are pseudonymised), so such keys are refused; record the person as the actor or
    the subject instead.
    """
    words = name.lower().split("_")
    for index, word in enumerate(words):
        following = words[index + 1] if index + 1 < len(words) else None
        if any(stem in word for stem in _PERSONAL_STEMS) or word in _PERSON_WORDS:
            return True
        if word in _PARTY_WORDS and (following is None or following in _PARTY_FOLLOWERS):
            return True
        if word in ("name", "names") and (
            index == 0 or words[index - 1] in _NAME_QUALIFIERS | _NAME_QUALIFIERS_MORE
        ):
            return True
    return False


_JWT_RE: Final = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.")
#: An ``af_`` API key, wherever it starts (``xaf_...`` too).
_API_KEY_RE: Final = re.compile(r"af_[A-Za-z0-9_-]{16,}", re.IGNORECASE | re.ASCII)
#: 32 or more hex digits, single hyphens allowed between them (hex secrets, UUIDs, digests).
_LONG_HEX_RE: Final = re.compile(r"[0-9A-Fa-f](?:-?[0-9A-Fa-f]){31,}")
_RUN_RE: Final = re.compile(r"[A-Za-z0-9+/_=-]{24,}")
_HEX_RUN_RE: Final = re.compile(r"[0-9A-Fa-f-]+")
_BASE32_RE: Final = re.compile(r"[A-Z2-7]{24,}={0,6}", re.IGNORECASE | re.ASCII)
#: Groups of base32 characters separated by single spaces, as authenticator apps show them.
_BASE32_GROUPS_RE: Final = re.compile(
    r"(?<![A-Za-z0-9])[A-Za-z2-7]{3,8}(?: [A-Za-z2-7]{1,8})+(?![A-Za-z0-9])"
)
#: An email address anywhere in a value.
_EMAIL_RE: Final = re.compile(
    r"[^\s@<>()\[\],;:\"']+@[^\s@<>()\[\],;:\"']+\.[A-Za-z]{2,}", re.ASCII
)


def _random_run(run: str) -> bool:
    if _HEX_RUN_RE.fullmatch(run) and (run.islower() or run.isupper() or run.isdigit()):
        return False  # hex of one case, UUIDs: ids (long ones are judged by _LONG_HEX_RE)
    if _BASE32_RE.fullmatch(run):
        return True  # TOTP secrets, in either case
    # base64/base64url of random bytes: both cases, with near certainty from 24 characters
    return any(c.isupper() for c in run) and any(c.islower() for c in run)


def _grouped_base32(value: str) -> bool:
    """Base32 in equal groups (``JBSW Y3DP EHPK 3PXP ...``), the last one possibly shorter,
    24 characters or more, wherever it stands among other words."""
    for match in _BASE32_GROUPS_RE.finditer(value):
        groups = match.group().split(" ")
        start = 0
        while start < len(groups):
            size = len(groups[start])
            end = start + 1
            while end < len(groups) and len(groups[end]) == size:
                end += 1
            total = size * (end - start)
            if end < len(groups) and len(groups[end]) < size:
                total += len(groups[end])  # a shorter last group
            if 3 <= size <= 8 and total >= 24:
                return True
            start = end
    return False


def looks_like_secret(value: str, *, hex_ids: bool = False) -> bool:
    """Whether text looks like one of our secrets: a JWT, an ``af_`` API key (even glued to a
    preceding character), 32 or more hex digits (a 128- or 256-bit hex secret), or a long
    random string: a run of 24 or more base64/base64url characters in both cases, or of base32
    in either case, whole or in space-separated groups (a TOTP secret as apps show it).

    Args:
        value: the text.
        hex_ids: the value is under an id key (:data:`ID_DETAIL_KEYS`): hex strings and UUIDs
            of any length are ids there, not secrets.
    """
    if _JWT_RE.search(value) or _API_KEY_RE.search(value):
        return True
    if not hex_ids and _LONG_HEX_RE.search(value):
        return True
    if _grouped_base32(value):
        return True
    return any(_random_run(run) for run in _RUN_RE.findall(value))


def _control_character(value: str) -> bool:
    """C0 and C1 controls, DEL, and the line and paragraph separators (U+2028, U+2029)."""
    return any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value)


def _check_value(name: str, value: object, *, hex_ids: bool) -> Scalar:
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
        # never echo the value: it may be the secret or the personal data
        if _control_character(value):
            raise ValueError(f"detail {name!r} holds a control character or a line break")
        if looks_like_secret(value, hex_ids=hex_ids):
            raise ValueError(f"detail {name!r} looks like a secret (token, key or random string)")
        if _EMAIL_RE.search(value):
            raise ValueError(f"detail {name!r} holds an email address: personal data")
        return value
    raise ValueError(f"detail {name!r} must be a str, int, float, bool or None")


def validate_details(
    details: Mapping[str, object] | None,
    *,
    event_type: SecurityEventType | None = None,
) -> Mapping[str, Scalar]:
    """Check event details and return them as a read-only mapping sorted by key.

    With ``event_type`` (as :class:`SecurityEvent` does), every key must be one of
    :data:`DETAIL_KEYS` for that type, and values under :data:`ID_DETAIL_KEYS` may be long hex
    ids. Without it, no key may name a secret and no value may hold 32 or more hex digits.

    Raises:
        TypeError: ``details`` is not a mapping.
        ValueError: too many keys; a key that is not lower-case snake case of at most 64
            characters, that names personal data, that names a secret (and is not allowed for
            ``event_type``), or that ``event_type`` does not record; a value that is not a
            scalar, is too long, is not finite, holds a control character or a line break,
            looks like a secret, or holds an email address. The message names the key, never
            the value.
    """
    if details is None:
        return MappingProxyType({})
    if not isinstance(details, Mapping):
        raise TypeError("details must be a mapping of str to scalars")
    if len(details) > MAX_DETAIL_KEYS:
        raise ValueError(f"at most {MAX_DETAIL_KEYS} details")
    allowed = DETAIL_KEYS[event_type] if event_type is not None else frozenset[str]()
    checked: dict[str, Scalar] = {}
    for name in sorted(details, key=str):
        if not isinstance(name, str) or not _KEY_RE.fullmatch(name):
            raise ValueError("detail keys must be lower-case snake case, at most 64 characters")
        if personal_key_name(name):
            raise ValueError(
                f"detail key {name!r} names personal data: record people as actor or subject"
            )
        if secret_key_name(name) and name not in allowed:
            raise ValueError(f"detail key {name!r} names a secret: details never hold secrets")
        if event_type is not None and name not in allowed:
            raise ValueError(
                f"detail key {name!r} is not recorded for {event_type.value!r} events"
                " (see DETAIL_KEYS)"
            )
        hex_ids = event_type is not None and name in ID_DETAIL_KEYS
        checked[name] = _check_value(name, details[name], hex_ids=hex_ids)
    return MappingProxyType(checked)


def _details_copy(value: Mapping[str, object] | None) -> Mapping[str, Scalar]:
    """A first, type-free step: a mapping is required; the checks need the event type and run
    in ``SecurityEvent.__attrs_post_init__``."""
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise TypeError("details must be a mapping of str to scalars")
    return cast("Mapping[str, Scalar]", value)


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
        return _normal_ip(value)
    except ValueError:
        raise ValueError("ip must be an IPv4 or IPv6 address") from None


@functools.lru_cache(maxsize=4096)
def _normal_ip(value: str) -> str:
    # Every request context and event parses its client's address: a pure function, memoised
    # (bounded; a refused value raises and is not kept).
    return str(ipaddress.ip_address(value))


def _user_agent(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("user_agent must be a str or None")
    return _clean_user_agent(value[:_MAX_USER_AGENT]) or None


@functools.lru_cache(maxsize=1024)
def _clean_user_agent(clipped: str) -> str:
    # Not a secret, and attacker-chosen: keep the event, clip the header (memoised, bounded:
    # a client sends the same one on every request).
    return "".join(c if c.isprintable() else "?" for c in clipped)


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


_REQUEST_ID_RE: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _request_id(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise TypeError("request_id must be a str or None")
    if _REQUEST_ID_RE.fullmatch(value) is None:
        raise ValueError("request_id must be 1 to 64 of A-Z a-z 0-9 . _ -")


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
        request_id: the id of the request that caused it (1 to 64 of ``A-Z a-z 0-9 . _ -``),
            or ``None``.

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
    details: Mapping[str, Scalar] = attrs.field(factory=dict, converter=_details_copy, hash=False)
    event_id: str = attrs.field(factory=_new_event_id, validator=_event_id)
    request_id: str | None = attrs.field(default=None, validator=_request_id)

    def __attrs_post_init__(self) -> None:
        # the details' checks depend on the type (DETAIL_KEYS), set before them
        object.__setattr__(self, "details", validate_details(self.details, event_type=self.type))


# --- sinks and request context ---------------------------------------------------------------


@runtime_checkable
class EventSink(Protocol):
    """Where security events go (the audit log, a log stream, metrics).

    ``emit`` must not raise for an event it cannot keep when losing it is acceptable; a sink
    whose failure must stop the act (the audit log under a strict policy) raises
    :class:`~storno_security.errors.StoreError`.
    """

    def emit(self, event: SecurityEvent) -> None:
        """Keep or forward one event."""
        ...


@attrs.frozen
class FanOutSink:
    """Sends every event to each of ``sinks``, in order (the first failure propagates)."""

    sinks: tuple[EventSink, ...]

    def emit(self, event: SecurityEvent) -> None:
        for sink in self.sinks:
            sink.emit(event)


@attrs.frozen(kw_only=True)
class RequestContext:
    """Who is on the other end of the current request, for the events it causes.

    Attributes:
        ip: the client address (normalised), or ``None``.
        user_agent: the client's ``User-Agent`` (clipped like :class:`SecurityEvent`'s).
        request_id: the request id (as :class:`SecurityEvent` accepts it), or ``None``.
    """

    ip: str | None = attrs.field(default=None, converter=_ip)
    user_agent: str | None = attrs.field(default=None, converter=_user_agent)
    request_id: str | None = attrs.field(default=None, validator=_request_id)


_EMPTY_CONTEXT: Final = RequestContext()
_CONTEXT: ContextVar[RequestContext] = ContextVar("storno_request_context", default=_EMPTY_CONTEXT)


def current_request_context() -> RequestContext:
    """The context set by the innermost :func:`request_context`, or an empty one."""
    return _CONTEXT.get()


@contextmanager
def request_context(
    *, ip: str | None = None, user_agent: str | None = None, request_id: str | None = None
) -> Iterator[RequestContext]:
    """Set the client fields of every event made in this block (thread- and task-local).

    A malformed ``ip`` or ``request_id`` is dropped (``None``) rather than refused: it comes
    from the network, and the request must still be recorded.
    """
    context = RequestContext(
        ip=_safe_ip(ip),
        user_agent=user_agent if isinstance(user_agent, str) else None,
        request_id=_safe_request_id(request_id),
    )
    token = _CONTEXT.set(context)
    try:
        yield context
    finally:
        _CONTEXT.reset(token)


def enter_request_context(
    *, ip: str | None = None, user_agent: str | None = None, request_id: str | None = None
) -> Token[RequestContext]:
    """Set the request context for what follows, until :func:`leave_request_context` with the
    token returned (for frameworks whose hooks cannot wrap a ``with`` block, such as a
    middleware's request and response hooks). Malformed values are dropped, as in
    :func:`request_context`."""
    context = RequestContext(
        ip=_safe_ip(ip),
        user_agent=user_agent if isinstance(user_agent, str) else None,
        request_id=_safe_request_id(request_id),
    )
    return _CONTEXT.set(context)


def leave_request_context(token: Token[RequestContext]) -> None:
    """Restore the context that :func:`enter_request_context` replaced."""
    _CONTEXT.reset(token)


def _safe_ip(value: object) -> str | None:
    try:
        return _ip(value)
    except (TypeError, ValueError):
        return None


def _safe_request_id(value: object) -> str | None:
    if isinstance(value, str) and _REQUEST_ID_RE.fullmatch(value):
        return value
    return None
