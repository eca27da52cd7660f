"""The user account record: what the library keeps of a person (ACC-1, ACC-4, ACC-5).

A plain frozen value, loaded from and written to a directory store
(:class:`storno_security.kit.DirectoryStore`). Secret-bearing fields (the password hash and the
sealed TOTP secrets) are kept out of ``repr``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import attrs

from storno_security.clock import ensure_aware_utc

__all__ = ["USER_FIELDS", "UserAccount"]

_MAX_ID: Final = 255


def _check_id(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{attribute.name} must be a str, not {type(value).__name__}")
    if not value or len(value) > _MAX_ID or "\x00" in value:
        raise ValueError(f"{attribute.name} must be 1 to {_MAX_ID} characters without NUL")


def _optional_text(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{attribute.name} must be a str or None")


def _time(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError("times must be datetimes")
    return ensure_aware_utc(value)


def _optional_time(value: object) -> datetime | None:
    return None if value is None else _time(value)


@attrs.frozen(kw_only=True)
class UserAccount:
    """One account.

    Attributes:
        user_id: random, non-secret id.
        email: the normalised address (:func:`~storno_security.accounts.normalise_email`);
            ``None`` once the account is anonymised (ACC-4).
        email_confirmed_at: when the address was proven (ACC-5), else ``None``. Changing the
            address clears it.
        name: display name (may be empty).
        password_hash: bcrypt hash, or ``None`` for an account that signs in with Google or a
            passkey only. Never in ``repr``.
        google_subject: the linked Google account's ``sub``, or ``None``.
        totp_secret_sealed: the confirmed TOTP secret, sealed by the vault; ``None`` without
            TOTP. Never in ``repr``.
        totp_pending_sealed: a TOTP secret being enrolled, sealed; ``None`` otherwise.
        mfa_enabled: whether logins need a second factor (MFA-4).
        created_at: registration time.
        password_changed_at: last password change or reset, or ``None``.
        deleted_at: when the user deleted the account (anonymised at once, purged later).
    """

    user_id: str = attrs.field(validator=_check_id)
    email: str | None = attrs.field(validator=_optional_text)
    created_at: datetime = attrs.field(converter=_time)
    name: str = attrs.field(default="", validator=attrs.validators.instance_of(str))
    email_confirmed_at: datetime | None = attrs.field(default=None, converter=_optional_time)
    password_hash: str | None = attrs.field(default=None, repr=False, validator=_optional_text)
    google_subject: str | None = attrs.field(default=None, validator=_optional_text)
    totp_secret_sealed: str | None = attrs.field(default=None, repr=False, validator=_optional_text)
    totp_pending_sealed: str | None = attrs.field(
        default=None, repr=False, validator=_optional_text
    )
    mfa_enabled: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    password_changed_at: datetime | None = attrs.field(default=None, converter=_optional_time)
    deleted_at: datetime | None = attrs.field(default=None, converter=_optional_time)

    @property
    def is_live(self) -> bool:
        """Not deleted."""
        return self.deleted_at is None

    @property
    def email_confirmed(self) -> bool:
        """The current address has been proven (ACC-5)."""
        return self.email is not None and self.email_confirmed_at is not None

    @property
    def has_password(self) -> bool:
        return self.password_hash is not None


#: The fields a directory store updates by compare-and-set (every field but the id and the
#: creation time).
USER_FIELDS: Final = frozenset(
    a.name for a in attrs.fields(UserAccount) if a.name not in ("user_id", "created_at")
)

_PROBE: Final = UserAccount(user_id="-", email=None, created_at=datetime(2000, 1, 1, tzinfo=UTC))


def _check_user_values(values: Mapping[str, Any], what: str) -> dict[str, Any]:
    """The ``expected`` or ``changes`` of a directory store's ``update_user``, checked by the
    validators of :class:`UserAccount` itself (times come back in UTC).

    Raises:
        ValueError: not a mapping, an unknown field name, a value of the wrong type, or (in
            ``changes``) an empty address or Google subject.
    """
    if not isinstance(values, Mapping):
        raise ValueError(f"{what} must be a mapping of field names to values")
    unknown = sorted(str(name) for name in values if name not in USER_FIELDS)
    if unknown:
        raise ValueError(f"{what} names unknown user fields: {', '.join(unknown)}")
    try:
        probe = attrs.evolve(_PROBE, **values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} holds a value of the wrong type: {exc}") from None
    if what == "changes":
        _check_keys(probe)
    return {name: getattr(probe, name) for name in values}


def _check_keys(user: UserAccount) -> None:
    """An address or Google subject, the keys users are found by, is never empty.

    Raises:
        ValueError: one is the empty string.
    """
    if user.email == "" or user.google_subject == "":
        raise ValueError("an address or Google subject must not be empty (None for none)")
