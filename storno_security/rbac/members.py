"""Membership changes: who may add, change and remove members, and transfer ownership (RBAC-5).

Each function takes the acting member's membership, the acting :class:`Principal` (keyword
``principal``) and the target, checks the rules, and returns the new record(s) for the caller
to store, or raises. The rules:

* only a user session may change memberships: an API key never may (KEY-5), whatever its scope
  or list, because a key could otherwise hand out what it cannot hold itself;
* the acting principal's effective permissions (:func:`effective_permissions`) must hold
  ``member.manage``, and are the ceiling of every grant;
* nobody raises their own permissions (no self-promotion);
* nobody grants more than they hold, or acts on a member who holds more than they do;
* the Owner cannot be demoted or removed, and nobody becomes Owner except by a transfer that
  only the Owner may make;
* a user has at most one live membership per organization: adding a member who already has
  one is refused;
* a membership of another organization (or a removed one) is "not found".
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime

import attrs

from storno_security.clock import ensure_aware_utc
from storno_security.errors import (
    DuplicateMembershipError,
    MembershipNotFoundError,
    PermissionDeniedError,
)
from storno_security.rbac.authorize import effective_permissions
from storno_security.rbac.model import Membership, Principal, is_visible
from storno_security.rbac.permissions import Permission, Role

__all__ = [
    "MembershipAction",
    "MembershipChange",
    "OwnershipTransfer",
    "authorize_member_addition",
    "authorize_member_removal",
    "authorize_membership_update",
    "authorize_ownership_transfer",
]


class MembershipAction(enum.StrEnum):
    """What a :class:`MembershipChange` does."""

    ADD = "add"
    UPDATE = "update"
    REMOVE = "remove"


@attrs.frozen(kw_only=True)
class MembershipChange:
    """An allowed change, ready to store and to record in the audit trail.

    Attributes:
        action: add, update or remove.
        actor_user_id: who makes the change.
        before: the target as it was (``None`` for an addition).
        after: the target as it must be stored (for a removal: with ``deleted_at`` set).
    """

    action: MembershipAction
    actor_user_id: str
    before: Membership | None
    after: Membership


@attrs.frozen(kw_only=True)
class OwnershipTransfer:
    """An allowed ownership transfer: store both records in one transaction.

    Attributes:
        former_owner: the acting Owner, now an Admin.
        new_owner: the target, now the Owner.
    """

    former_owner: Membership
    new_owner: Membership


def _check_actor(actor: Membership, principal: Principal) -> frozenset[Permission]:
    """What the acting principal may do and grant here (KEY-4); refused for an API key."""
    if not isinstance(actor, Membership):
        raise TypeError("actor must be a Membership")
    if not isinstance(principal, Principal):
        raise TypeError("principal must be a Principal")
    if not is_visible(actor):
        raise PermissionDeniedError(reason="actor_removed")
    allowed = effective_permissions(principal, actor)
    if principal.is_api_key:
        raise PermissionDeniedError(reason="key_forbidden")
    return allowed


def _check_target(actor: Membership, target: Membership | None) -> Membership:
    if target is not None and not isinstance(target, Membership):
        raise TypeError("target must be a Membership or None")
    if target is None or not is_visible(target):
        raise MembershipNotFoundError(reason="unknown")
    if target.organization_id != actor.organization_id:
        raise MembershipNotFoundError(reason="other_organization")
    return target


def _check_manager(allowed: frozenset[Permission]) -> None:
    if Permission.MEMBER_MANAGE not in allowed:
        raise PermissionDeniedError(reason="no_member_manage")


def _check_grant(allowed: frozenset[Permission], granted: frozenset[Permission]) -> None:
    if not granted <= allowed:
        raise PermissionDeniedError(reason="grant_exceeds_actor")


def _check_not_a_member(new: Membership, existing: Iterable[Membership]) -> None:
    if isinstance(existing, Membership) or not hasattr(existing, "__iter__"):
        raise TypeError("existing must be an iterable of Membership")
    for member in existing:
        if not isinstance(member, Membership):
            raise TypeError("existing must hold only Membership records")
        if (
            member.user_id == new.user_id
            and member.organization_id == new.organization_id
            and is_visible(member)
        ):
            raise DuplicateMembershipError(reason="already_a_member")


def authorize_member_addition(
    actor: Membership,
    new: Membership,
    *,
    principal: Principal,
    existing: Iterable[Membership],
) -> MembershipChange:
    """Check that ``actor`` may add the membership ``new`` to its organization.

    Args:
        actor: the acting member's current membership.
        new: the membership to add.
        principal: who acts (its user must be ``actor``'s); an API key is always refused.
        existing: the new member's current memberships, as loaded now (at least those in
            ``actor``'s organization; others are ignored, as are removed ones).

    Returns:
        The change; ``after`` is the record to store.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: ``new`` is already removed.
        PermissionDeniedError: the actor is removed, is not ``principal``'s membership, or
            lacks ``member.manage``; ``principal`` is an API key (``reason="key_forbidden"``);
            ``new`` is in another organization, is an Owner, or holds more than the principal.
        DuplicateMembershipError: the user already has a live membership in this organization
            (``reason="already_a_member"``).
    """
    allowed = _check_actor(actor, principal)
    if not isinstance(new, Membership):
        raise TypeError("new must be a Membership")
    if not is_visible(new):
        raise ValueError("a new membership cannot be removed already")
    _check_manager(allowed)
    if new.organization_id != actor.organization_id:
        raise PermissionDeniedError(reason="other_organization")
    if new.role is Role.OWNER:
        raise PermissionDeniedError(reason="owner_by_transfer_only")
    _check_grant(allowed, new.effective_permissions)
    _check_not_a_member(new, existing)
    return MembershipChange(
        action=MembershipAction.ADD, actor_user_id=actor.user_id, before=None, after=new
    )


def authorize_membership_update(
    actor: Membership,
    target: Membership | None,
    *,
    principal: Principal,
    role: Role | str,
    permissions: Iterable[Permission | str] | None = None,
) -> MembershipChange:
    """Check that ``actor`` may give ``target`` a new role and permission set (RBAC-5).

    Args:
        actor: the acting member's current membership.
        target: the membership to change, as loaded by id (``None`` if none was found).
        principal: who acts (its user must be ``actor``'s); an API key is always refused.
        role: the new role.
        permissions: the new custom permission set, or ``None`` for the role's defaults.

    Returns:
        The change; ``after`` is the record to store.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: an unknown role or permission, or a custom set the role cannot hold.
        MembershipNotFoundError: ``target`` is missing, removed, or of another organization.
        PermissionDeniedError: the actor is removed, is not ``principal``'s membership, or
            lacks ``member.manage``; ``principal`` is an API key (``reason="key_forbidden"``);
            the target is the Owner; the new role is Owner; the actor raises their own
            permissions; the target holds more than the principal; or the new set exceeds the
            principal's.
    """
    allowed = _check_actor(actor, principal)
    member = _check_target(actor, target)
    _check_manager(allowed)
    new_permissions = None if permissions is None else frozenset(permissions)
    after = attrs.evolve(member, role=role, permissions=new_permissions)
    if member.role is Role.OWNER:
        raise PermissionDeniedError(reason="owner_protected")
    if after.role is Role.OWNER:
        raise PermissionDeniedError(reason="owner_by_transfer_only")
    before_set, after_set = member.effective_permissions, after.effective_permissions
    if member.user_id == actor.user_id and not after_set <= before_set:
        raise PermissionDeniedError(reason="self_promotion")
    if not before_set <= allowed:
        raise PermissionDeniedError(reason="target_outranks_actor")
    _check_grant(allowed, after_set)
    return MembershipChange(
        action=MembershipAction.UPDATE, actor_user_id=actor.user_id, before=member, after=after
    )


def authorize_member_removal(
    actor: Membership, target: Membership | None, *, principal: Principal, at: datetime
) -> MembershipChange:
    """Check that ``actor`` may remove ``target`` (RBAC-5); the removal is a soft deletion.

    Args:
        actor: the acting member's current membership.
        target: the membership to remove (``None`` if none was found).
        principal: who acts (its user must be ``actor``'s); an API key is always refused.
        at: the removal time (aware), written to ``deleted_at``.

    Returns:
        The change; ``after`` is the record to store (``deleted_at`` set).

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: ``at`` is naive.
        MembershipNotFoundError: ``target`` is missing, removed, or of another organization.
        PermissionDeniedError: the actor is removed, is not ``principal``'s membership, or
            lacks ``member.manage``; ``principal`` is an API key (``reason="key_forbidden"``);
            the target is the Owner or holds more than the principal.
    """
    allowed = _check_actor(actor, principal)
    member = _check_target(actor, target)
    when = ensure_aware_utc(at)
    _check_manager(allowed)
    if member.role is Role.OWNER:
        raise PermissionDeniedError(reason="owner_protected")
    if not member.effective_permissions <= allowed:
        raise PermissionDeniedError(reason="target_outranks_actor")
    return MembershipChange(
        action=MembershipAction.REMOVE,
        actor_user_id=actor.user_id,
        before=member,
        after=attrs.evolve(member, deleted_at=when),
    )


def authorize_ownership_transfer(
    actor: Membership, target: Membership | None, *, principal: Principal
) -> OwnershipTransfer:
    """Check that ``actor`` may make ``target`` the Owner; the actor becomes an Admin.

    Args:
        actor: the acting Owner's current membership.
        target: the membership to make the Owner (``None`` if none was found).
        principal: who acts (its user must be ``actor``'s); an API key is always refused.

    Returns:
        Both new records, to store in one transaction.

    Raises:
        TypeError: an argument has the wrong type.
        MembershipNotFoundError: ``target`` is missing, removed, or of another organization.
        PermissionDeniedError: the actor is removed, is not ``principal``'s membership, or is
            not the Owner; ``principal`` is an API key (``reason="key_forbidden"``); or the
            actor is the target.
    """
    allowed = _check_actor(actor, principal)
    member = _check_target(actor, target)
    if actor.role is not Role.OWNER or Permission.ORG_TRANSFER_OWNERSHIP not in allowed:
        raise PermissionDeniedError(reason="not_owner")
    if member.user_id == actor.user_id:
        raise PermissionDeniedError(reason="self_transfer")
    return OwnershipTransfer(
        former_owner=attrs.evolve(actor, role=Role.ADMIN, permissions=None),
        new_owner=attrs.evolve(member, role=Role.OWNER, permissions=None),
    )
