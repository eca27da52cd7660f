"""The one access decision: :func:`authorize` (RBAC-2, RBAC-3, KEY-4, KEY-5)."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from storno_security.errors import CompanyNotFoundError, PermissionDeniedError
from storno_security.rbac.model import Company, Membership, Principal, is_visible
from storno_security.rbac.permissions import (
    KEY_FORBIDDEN_PERMISSIONS,
    SCOPE_PERMISSIONS,
    Permission,
    Role,
    parse_permission,
)

__all__ = ["Authorization", "authorize", "check_key_grant", "effective_permissions"]


@attrs.frozen(kw_only=True)
class Authorization:
    """A granted request: what was allowed, to whom, where.

    Attributes:
        principal: who asked.
        permission: what was granted.
        organization_id: in which organization.
        company_id: on which company, or ``None`` for an organization-wide action.
        role: the principal's (or the key's user's) role.
        effective_permissions: everything this principal may do here, for the caller to show
            or to check further actions of the same request without another lookup.
    """

    principal: Principal
    permission: Permission
    organization_id: str
    company_id: str | None
    role: Role
    effective_permissions: frozenset[Permission]


def _check_membership(principal: Principal, membership: Membership | None) -> Membership:
    if membership is None or not is_visible(membership):
        raise PermissionDeniedError(reason="no_membership")
    if membership.user_id != principal.user_id:
        raise PermissionDeniedError(reason="no_membership")
    if membership.organization_id != principal.organization_id:
        raise PermissionDeniedError(reason="wrong_organization")
    return membership


def effective_permissions(
    principal: Principal, membership: Membership | None
) -> frozenset[Permission]:
    """What ``principal`` may do in its organization, given its user's current membership.

    For a user: the membership's permissions (custom set or role defaults). For an API key
    (KEY-4): the membership's permissions, intersected with the union of its scopes' allowances
    (when it has scopes) and with its explicit list (when it has one, checked against the
    *current* membership on every call), minus the KEY-5 permissions.

    Raises:
        PermissionDeniedError: the membership is missing, removed, or not this principal's in
            this organization.
    """
    member = _check_membership(principal, membership)
    allowed = member.effective_permissions
    if principal.is_api_key:
        allowed = allowed - KEY_FORBIDDEN_PERMISSIONS
        if principal.scopes:
            by_scope: frozenset[Permission] = frozenset().union(
                *(SCOPE_PERMISSIONS[s] for s in principal.scopes)
            )
            allowed = allowed & by_scope
        if principal.permissions is not None:
            allowed = allowed & principal.permissions
    return allowed


def _denial_reason(principal: Principal, member: Membership, permission: Permission) -> str:
    if principal.is_api_key and permission in KEY_FORBIDDEN_PERMISSIONS:
        return "key_forbidden"
    if permission not in member.effective_permissions:
        return "not_in_role"
    if principal.permissions is not None and permission not in principal.permissions:
        return "not_in_key_permissions"
    return "not_in_scope"


def authorize(
    principal: Principal,
    permission: Permission | str,
    *,
    organization_id: str,
    membership: Membership | None,
    company: Company | None = None,
) -> Authorization:
    """Decide whether ``principal`` may use ``permission`` in an organization, on a company.

    Args:
        principal: who asks (a user, or an API key converted to a :class:`Principal`).
        permission: the permission the operation needs.
        organization_id: the organization the request acts in (from
            :func:`~storno_security.rbac.resolve_organization`, or the key's organization).
        membership: the current membership of ``principal.user_id`` in that organization as
            loaded now, or ``None`` if there is none. For a key it is its creator's, so a key
            loses what its creator loses.
        company: the target company for a company-scoped operation (from
            :func:`~storno_security.rbac.resolve_company`), or ``None``.

    Returns:
        The decision, only when granted.

    Raises:
        TypeError: ``principal`` is not a :class:`Principal`, or ``permission`` not a str.
        ValueError: ``permission`` names no permission (a programming error, not a denial).
        PermissionDeniedError: the principal has no live membership here, the request names
            another organization than the principal's, or the permission is outside its
            role, its key's scope or list, or is one no API key may use (KEY-5). ``reason``
            says which; the message never does.
        CompanyNotFoundError: ``company`` belongs to another organization or is soft-deleted:
            answered as if it did not exist (RBAC-3).
    """
    if not isinstance(principal, Principal):
        raise TypeError("principal must be a Principal")
    wanted = permission if isinstance(permission, Permission) else parse_permission(permission)
    if principal.organization_id != organization_id:
        raise PermissionDeniedError(reason="wrong_organization")
    allowed = effective_permissions(principal, membership)
    member = _check_membership(principal, membership)
    if company is not None and (
        company.organization_id != organization_id or not is_visible(company)
    ):
        raise CompanyNotFoundError(reason="not_in_organization")
    if wanted not in allowed:
        raise PermissionDeniedError(reason=_denial_reason(principal, member, wanted))
    return Authorization(
        principal=principal,
        permission=wanted,
        organization_id=organization_id,
        company_id=None if company is None else company.company_id,
        role=member.role,
        effective_permissions=allowed,
    )


def check_key_grant(
    creator: Membership,
    *,
    scopes: Iterable[str] = (),
    permissions: Iterable[Permission | str] | None = None,
) -> frozenset[Permission]:
    """Check, when an API key is created, what it asks for against its creator (KEY-4, KEY-5).

    An explicit permission list must be a subset of the creator's current permissions and hold
    no KEY-5 permission. (The creator also needs ``apikey.manage``: check that with
    :func:`authorize` on the creating request.) The result is only what the key could do now;
    :func:`authorize` intersects again on every request.

    Args:
        creator: the creating user's current membership in the key's organization.
        scopes: the key's scopes.
        permissions: the key's explicit list, or ``None``.

    Returns:
        The key's effective permissions at creation.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: an unknown scope or permission, or neither a scope nor a list.
        PermissionDeniedError: the creator is removed, or the list asks for a KEY-5
            permission (``reason="key_forbidden"``) or for more than the creator holds
            (``reason="exceeds_creator"``).
    """
    if not isinstance(creator, Membership):
        raise TypeError("creator must be a Membership")
    principal = Principal.api_key(
        creator.user_id,
        organization_id=creator.organization_id,
        scopes=scopes,
        permissions=permissions,
    )
    if not is_visible(creator):
        raise PermissionDeniedError(reason="no_membership")
    if principal.permissions is not None:
        if principal.permissions & KEY_FORBIDDEN_PERMISSIONS:
            raise PermissionDeniedError(reason="key_forbidden")
        if not principal.permissions <= creator.effective_permissions:
            raise PermissionDeniedError(reason="exceeds_creator")
    return effective_permissions(principal, creator)
