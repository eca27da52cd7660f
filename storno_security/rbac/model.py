"""The records RBAC decides on: principals, memberships, companies; soft deletion (RBAC-1,
RBAC-4).

These are plain frozen values. The application loads them from its own tables and hands them to
:func:`~storno_security.rbac.authorize` and the tenancy functions; nothing here touches storage.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol, TypeVar

import attrs

from storno_security.clock import ensure_aware_utc
from storno_security.rbac.permissions import (
    PERMISSION_INFO,
    ROLE_PERMISSIONS,
    Permission,
    PermissionKind,
    Role,
    Scope,
    parse_permissions,
)

__all__ = [
    "Company",
    "Membership",
    "Principal",
    "PrincipalKind",
    "SoftDeletable",
    "is_visible",
    "only_visible",
]

_MAX_ID = 255


def _check_id(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{attribute.name} must be a str, not {type(value).__name__}")
    if not value or len(value) > _MAX_ID or "\x00" in value:
        raise ValueError(f"{attribute.name} must be 1 to {_MAX_ID} characters without NUL")


def _optional_id(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _check_id(instance, attribute, value)


def _optional_time(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError("deleted_at must be a datetime or None")
    return ensure_aware_utc(value)


def _optional_permissions(value: object) -> frozenset[Permission] | None:
    return None if value is None else parse_permissions(value)


def _role(value: object) -> Role:
    if isinstance(value, Role):
        return value
    if not isinstance(value, str):
        raise TypeError("role must be a Role or its name")
    try:
        return Role(value)
    except ValueError:
        raise ValueError("unknown role") from None


class SoftDeletable(Protocol):
    """A record that is soft-deleted by setting ``deleted_at`` (RBAC-4)."""

    @property
    def deleted_at(self) -> datetime | None:
        """When the record was deleted, or ``None`` while it is live."""
        ...


_T = TypeVar("_T", bound=SoftDeletable)


def is_visible(record: SoftDeletable) -> bool:
    """Whether a record may be seen or changed by any read or write path (RBAC-4).

    A record whose ``deleted_at`` is set is invisible, whatever the time it names (a deletion
    scheduled for later is already in effect): it is kept only for the audit trail. Applications
    filter their queries the same way (``WHERE deleted_at IS NULL``).
    """
    return record.deleted_at is None


def only_visible(records: Iterable[_T]) -> list[_T]:
    """The records of ``records`` that are not soft-deleted, in order (RBAC-4)."""
    return [r for r in records if is_visible(r)]


@attrs.frozen(kw_only=True)
class Company:
    """A company of an organization (RBAC-1).

    Attributes:
        company_id: the company's id (a canonical lower-case UUID when it comes from
            ``X-Company``).
        organization_id: the organization it belongs to.
        deleted_at: set when soft-deleted (RBAC-4).
    """

    company_id: str = attrs.field(validator=_check_id)
    organization_id: str = attrs.field(validator=_check_id)
    deleted_at: datetime | None = attrs.field(default=None, converter=_optional_time)


#: The most a custom permission set may hold for a role other than Owner: the three Owner acts
#: (delete, billing, ownership transfer) are never delegated.
_CUSTOM_CEILING = frozenset(
    p for p, i in PERMISSION_INFO.items() if i.kind is not PermissionKind.OWNER
)


@attrs.frozen(kw_only=True)
class Membership:
    """A user's role in an organization (RBAC-1, RBAC-2).

    Attributes:
        user_id: the member.
        organization_id: the organization.
        role: Owner, Admin, Accountant or Viewer.
        permissions: custom permissions that *replace* the role's defaults, or ``None`` for the
            defaults. An Owner always has every permission (no custom set); any other role's
            custom set may not hold an Owner-only permission (``org.delete``,
            ``org.transfer_ownership``, ``billing.manage``).
        is_default: the membership used when a request names no organization (RBAC-3).
        deleted_at: set when the member was removed (RBAC-4): a removed membership grants
            nothing.

    Raises:
        TypeError: a field has the wrong type.
        ValueError: an id is empty or too long, a role or permission name is unknown, an Owner
            has a custom set, or a custom set holds an Owner-only permission.
    """

    user_id: str = attrs.field(validator=_check_id)
    organization_id: str = attrs.field(validator=_check_id)
    role: Role = attrs.field(converter=_role)
    permissions: frozenset[Permission] | None = attrs.field(
        default=None, converter=_optional_permissions
    )
    is_default: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    deleted_at: datetime | None = attrs.field(default=None, converter=_optional_time)

    @permissions.validator
    def _check_permissions(
        self, attribute: attrs.Attribute[Any], value: frozenset[Permission] | None
    ) -> None:
        if value is None:
            return
        if self.role is Role.OWNER:
            raise ValueError("an Owner has every permission: no custom set")
        if not value <= _CUSTOM_CEILING:
            raise ValueError("a custom permission set may not hold an Owner-only permission")

    @property
    def effective_permissions(self) -> frozenset[Permission]:
        """The custom set if there is one, else the role's defaults; nothing when removed."""
        if not is_visible(self):
            return frozenset()
        if self.permissions is not None:
            return self.permissions
        return ROLE_PERMISSIONS[self.role]


class PrincipalKind(enum.StrEnum):
    """Who is asking: a logged-in user, or an API key acting for its user."""

    USER = "user"
    API_KEY = "api_key"


def _kind(value: object) -> PrincipalKind:
    if isinstance(value, PrincipalKind):
        return value
    if not isinstance(value, str):
        raise TypeError("kind must be a PrincipalKind or its name")
    try:
        return PrincipalKind(value)
    except ValueError:
        raise ValueError("unknown principal kind") from None


def _scopes(value: object) -> frozenset[Scope]:
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        raise TypeError("scopes must be an iterable of scope names")
    out: set[Scope] = set()
    for item in value:
        if not isinstance(item, str):
            raise TypeError("a scope must be a str")
        try:
            out.add(Scope(item))
        except ValueError:
            raise ValueError("unknown scope") from None
    return frozenset(out)


@attrs.frozen(kw_only=True)
class Principal:
    """Who is asking (KEY-4).

    Build one with :meth:`user` or :meth:`api_key`. An API key acts for the user who created it,
    in one organization; its permissions are that user's current membership permissions,
    narrowed by its scopes and, when it has one, by its explicit permission list, and never
    including a KEY-5 permission.

    Attributes:
        kind: ``user`` or ``api_key``.
        user_id: the user (for a key: its creator, for whom it acts).
        organization_id: the organization the request acts in (for a key: the key's).
        scopes: a key's scopes (``read``, ``write``, ``admin``); empty for a user.
        permissions: a key's explicit permission list, or ``None``; always ``None`` for a user.
        key_id: a key's public id, for the audit trail; ``None`` for a user.

    Raises:
        TypeError: a field has the wrong type.
        ValueError: an unknown scope or permission; a user with scopes, a list or a key id; a
            key with neither a scope nor a list.
    """

    kind: PrincipalKind = attrs.field(converter=_kind)
    user_id: str = attrs.field(validator=_check_id)
    organization_id: str = attrs.field(validator=_check_id)
    scopes: frozenset[Scope] = attrs.field(default=frozenset(), converter=_scopes)
    permissions: frozenset[Permission] | None = attrs.field(
        default=None, converter=_optional_permissions
    )
    key_id: str | None = attrs.field(default=None, validator=_optional_id)

    def __attrs_post_init__(self) -> None:
        if self.kind is PrincipalKind.USER:
            if self.scopes or self.permissions is not None or self.key_id is not None:
                raise ValueError("a user principal has no scopes, permission list or key id")
        elif not self.scopes and self.permissions is None:
            raise ValueError("an API-key principal needs a scope or a permission list")

    @classmethod
    def user(cls, user_id: str, *, organization_id: str) -> Principal:
        """A logged-in user acting in ``organization_id``.

        Raises:
            TypeError: an id is not a str.
            ValueError: an id is empty or too long.
        """
        return cls(kind=PrincipalKind.USER, user_id=user_id, organization_id=organization_id)

    @classmethod
    def api_key(
        cls,
        user_id: str,
        *,
        organization_id: str,
        scopes: Iterable[str] = (),
        permissions: Iterable[str] | None = None,
        key_id: str | None = None,
    ) -> Principal:
        """An API key of ``user_id`` in ``organization_id``.

        Raises:
            TypeError: a field has the wrong type.
            ValueError: an unknown scope or permission, or neither a scope nor a list.
        """
        return cls(
            kind=PrincipalKind.API_KEY,
            user_id=user_id,
            organization_id=organization_id,
            scopes=scopes,  # the converters refuse a bare str (it is not a list of names)
            permissions=permissions,
            key_id=key_id,
        )

    @classmethod
    def from_api_key(cls, key: object) -> Principal:
        """The principal of a verified API key, read by shape from what
        ``storno_security.api_keys`` returns (an ``ApiKeyPrincipal``: ``user_id``,
        ``organization_id``, ``scopes``, ``permissions``, ``key_id``, ``is_api_key``), so that the
        two capabilities stay independent and the application copies no field by hand.

        Raises:
            TypeError: ``key`` is not an API-key principal, or a field has the wrong type.
            ValueError: an unknown scope or permission, or an empty id.
        """
        if getattr(key, "is_api_key", False) is not True:
            raise TypeError("expected a verified API-key principal (is_api_key is True)")
        scopes = getattr(key, "scopes", None)
        permissions = getattr(key, "permissions", None)
        if not isinstance(scopes, frozenset | set | tuple | list):
            raise TypeError("the key's scopes must be a collection of scope names")
        if permissions is not None and not isinstance(permissions, frozenset | set | tuple | list):
            raise TypeError("the key's permissions must be a collection of names or None")
        user_id = getattr(key, "user_id", None)
        organization_id = getattr(key, "organization_id", None)
        key_id = getattr(key, "key_id", None)
        if not isinstance(user_id, str) or not isinstance(organization_id, str):
            raise TypeError("the key's user_id and organization_id must be str")
        if not isinstance(key_id, str):
            raise TypeError("the key's key_id must be a str")
        return cls.api_key(
            user_id,
            organization_id=organization_id,
            scopes=scopes,
            permissions=permissions,
            key_id=key_id,
        )

    @property
    def is_api_key(self) -> bool:
        """Whether this is an API key."""
        return self.kind is PrincipalKind.API_KEY
