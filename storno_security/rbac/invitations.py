"""Organizations and invitations to join them (RBAC-1, RBAC-6).

A member with ``member.manage`` invites an email address with a role (and optionally a custom
permission set). The invitation names the *address*, never an account: only an account whose
address equals it and is confirmed (ACC-5) sees it and may accept it, so registering the
address first ("squatting") gains nothing until the mailbox is proven.

Acceptance is decided twice: :func:`authorize_invitation` when it is made, and
:func:`authorize_acceptance` when it is accepted, against the inviter's *current* membership (a
demoted or removed inviter's invitations grant nothing more than the inviter holds now). The
store then applies the acceptance as one atomic step, conditional on the organization not having
changed in between (its ``version``), so an invitation is accepted at most once and an
organization never ends without an Owner.

Everything here is pure: records in, records or errors out.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import attrs

from storno_security.clock import ensure_aware_utc
from storno_security.errors import (
    DuplicateMembershipError,
    InvitationNotFoundError,
    InvitationVoidError,
    PermissionDeniedError,
)
from storno_security.rbac.authorize import effective_permissions
from storno_security.rbac.model import Membership, Principal, is_visible
from storno_security.rbac.permissions import Permission, Role

__all__ = [
    "Invitation",
    "InvitationState",
    "Organization",
    "authorize_acceptance",
    "authorize_invitation",
    "new_invitation_id",
]

_MAX_ID: Final = 255


def _check_id(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{attribute.name} must be a str, not {type(value).__name__}")
    if not value or len(value) > _MAX_ID or "\x00" in value:
        raise ValueError(f"{attribute.name} must be 1 to {_MAX_ID} characters without NUL")


def _optional_id(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _check_id(instance, attribute, value)


def _time(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError("times must be datetimes")
    return ensure_aware_utc(value)


def _optional_time(value: object) -> datetime | None:
    return None if value is None else _time(value)


def _permissions(value: object) -> frozenset[Permission] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise TypeError("permissions must be an iterable of permission names, or None")
    return frozenset(Permission(p) for p in value)


def new_invitation_id() -> str:
    """A fresh, unguessable invitation id (a random UUID, 122 random bits)."""
    return str(uuid.uuid4())


@attrs.frozen(kw_only=True)
class Organization:
    """A tenant: it owns companies and has members (RBAC-1).

    Attributes:
        organization_id: the id.
        name: display name.
        created_at: when it was created.
        version: bumped by the store on every membership or invitation change, so a change
            decided on a read can be applied only if nothing changed since (RBAC-6).
        deleted_at: set when soft-deleted.
    """

    organization_id: str = attrs.field(validator=_check_id)
    name: str = attrs.field(validator=attrs.validators.instance_of(str))
    created_at: datetime = attrs.field(converter=_time)
    version: int = attrs.field(default=0, validator=attrs.validators.instance_of(int))
    deleted_at: datetime | None = attrs.field(default=None, converter=_optional_time)


class InvitationState(enum.StrEnum):
    """Where an invitation stands at a given time."""

    OPEN = "open"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


@attrs.frozen(kw_only=True)
class Invitation:
    """An invitation of an email address to an organization (RBAC-6).

    Attributes:
        invitation_id: random id (:func:`new_invitation_id`).
        organization_id: the inviting organization.
        email: the invited address, normalised.
        role: the role granted on acceptance (never Owner).
        permissions: a custom permission set, or ``None`` for the role's defaults.
        invited_by: the inviter's user id (``None`` once the inviter's account is purged).
        created_at: when it was made.
        expires_at: when it can no longer be accepted.
        accepted_at, declined_at, withdrawn_at: how it ended, if it did.
        accepted_by: the user who accepted it.
    """

    invitation_id: str = attrs.field(validator=_check_id)
    organization_id: str = attrs.field(validator=_check_id)
    email: str = attrs.field(validator=_check_id)
    role: Role = attrs.field(converter=Role)
    permissions: frozenset[Permission] | None = attrs.field(default=None, converter=_permissions)
    invited_by: str | None = attrs.field(default=None, validator=_optional_id)
    created_at: datetime = attrs.field(converter=_time)
    expires_at: datetime = attrs.field(converter=_time)
    accepted_at: datetime | None = attrs.field(default=None, converter=_optional_time)
    declined_at: datetime | None = attrs.field(default=None, converter=_optional_time)
    withdrawn_at: datetime | None = attrs.field(default=None, converter=_optional_time)
    accepted_by: str | None = attrs.field(default=None, validator=_optional_id)

    def state(self, now: datetime) -> InvitationState:
        """The state at ``now``."""
        if self.accepted_at is not None:
            return InvitationState.ACCEPTED
        if self.declined_at is not None:
            return InvitationState.DECLINED
        if self.withdrawn_at is not None:
            return InvitationState.WITHDRAWN
        if ensure_aware_utc(now) >= self.expires_at:
            return InvitationState.EXPIRED
        return InvitationState.OPEN

    def membership_for(self, user_id: str, *, is_default: bool = False) -> Membership:
        """The membership this invitation grants to ``user_id``."""
        return Membership(
            user_id=user_id,
            organization_id=self.organization_id,
            role=self.role,
            permissions=self.permissions,
            is_default=is_default,
        )


def _grant(role: Role, permissions: frozenset[Permission] | None) -> frozenset[Permission]:
    probe = Membership(user_id="-", organization_id="-", role=role, permissions=permissions)
    return probe.effective_permissions


def authorize_invitation(
    inviter: Membership | None,
    *,
    principal: Principal,
    organization_id: str,
    email: str,
    role: Role | str,
    permissions: Iterable[Permission | str] | None,
    now: datetime,
    lifetime: timedelta,
    invitation_id: str | None = None,
) -> Invitation:
    """Check that ``principal`` (through ``inviter``) may invite ``email`` with this grant.

    Returns:
        The invitation to store.

    Raises:
        TypeError, ValueError: bad arguments (unknown role or permission, a custom set the role
            cannot hold, a non-positive lifetime).
        PermissionDeniedError: the inviter is missing or removed, is not the principal's
            membership in ``organization_id``, lacks ``member.manage``; the principal is an API
            key (``reason="key_forbidden"``); the role is Owner (``owner_by_transfer_only``); or
            the grant exceeds what the principal holds (``grant_exceeds_actor``).
    """
    if not isinstance(principal, Principal):
        raise TypeError("principal must be a Principal")
    if lifetime <= timedelta(0):
        raise ValueError("lifetime must be positive")
    role = Role(role)
    custom = _permissions(permissions)  # a bare name is refused, not read letter by letter
    allowed = _inviter_rights(inviter, principal, organization_id)
    if role is Role.OWNER:
        raise PermissionDeniedError(reason="owner_by_transfer_only")
    if not _grant(role, custom) <= allowed:
        raise PermissionDeniedError(reason="grant_exceeds_actor")
    at = ensure_aware_utc(now)
    return Invitation(
        invitation_id=invitation_id or new_invitation_id(),
        organization_id=organization_id,
        email=email,
        role=role,
        permissions=custom,
        invited_by=principal.user_id,
        created_at=at,
        expires_at=at + lifetime,
    )


def _inviter_rights(
    inviter: Membership | None, principal: Principal, organization_id: str
) -> frozenset[Permission]:
    if principal.is_api_key:
        raise PermissionDeniedError(reason="key_forbidden")
    if inviter is not None and not isinstance(inviter, Membership):
        raise TypeError("inviter must be a Membership or None")
    if (
        inviter is None
        or not is_visible(inviter)
        or inviter.organization_id != organization_id
        or inviter.user_id != principal.user_id
    ):
        raise PermissionDeniedError(reason="inviter_not_a_member")
    allowed = effective_permissions(principal, inviter)
    if Permission.MEMBER_MANAGE not in allowed:
        raise PermissionDeniedError(reason="no_member_manage")
    return allowed


def authorize_acceptance(
    invitation: Invitation | None,
    *,
    user_id: str,
    email: str | None,
    email_confirmed: bool,
    inviter: Membership | None,
    existing: Iterable[Membership],
    now: datetime,
) -> Membership:
    """Check that the account ``user_id`` may accept ``invitation`` now (RBAC-6, ACC-5).

    Args:
        invitation: the invitation as loaded (``None`` when unknown).
        user_id: the accepting account.
        email: its current address; ``email_confirmed``: whether that address is proven.
        inviter: the inviter's *current* membership in the organization (``None`` if gone).
        existing: the accepting user's memberships (to refuse a second live one, and to make
            the first one the default).
        now: the time of acceptance.

    Returns:
        The membership to store.

    Raises:
        InvitationNotFoundError: unknown, not for this account's confirmed address, or no
            longer open (accepted, declined, withdrawn, expired): one error for every case, so
            an unconfirmed or other account learns nothing; ``reason`` says which.
        InvitationVoidError: the inviter is gone, or no longer holds ``member.manage`` or the
            granted permissions (``reason`` as :func:`authorize_invitation`).
        DuplicateMembershipError: the user is a live member already.
    """
    if invitation is None:
        raise InvitationNotFoundError(reason="unknown")
    if not email_confirmed or email is None or email != invitation.email:
        raise InvitationNotFoundError(reason="not_addressee")
    state = invitation.state(now)
    if state is not InvitationState.OPEN:
        raise InvitationNotFoundError(reason=state.value)
    if invitation.invited_by is None:
        raise InvitationVoidError(reason="inviter_gone")
    principal = Principal.user(invitation.invited_by, organization_id=invitation.organization_id)
    try:
        allowed = _inviter_rights(inviter, principal, invitation.organization_id)
    except PermissionDeniedError as exc:
        raise InvitationVoidError(reason=exc.reason) from None
    if not _grant(invitation.role, invitation.permissions) <= allowed:
        raise InvitationVoidError(reason="grant_exceeds_actor")
    live = [m for m in existing if is_visible(m)]
    if any(m.organization_id == invitation.organization_id for m in live):
        raise DuplicateMembershipError(reason="already_a_member")
    return invitation.membership_for(user_id, is_default=not live)


def _check_memberships(organization_id: str, memberships: Sequence[Membership]) -> None:
    """The memberships a directory store's ``apply_memberships`` writes: one per user, all of
    ``organization_id``.

    Raises:
        TypeError: not a sequence of memberships.
        ValueError: a membership of another organization, or two of one user.
    """
    if isinstance(memberships, str | bytes) or not isinstance(memberships, Sequence):
        raise TypeError("memberships must be a sequence of Membership")
    users: set[str] = set()
    for membership in memberships:
        if not isinstance(membership, Membership):
            raise TypeError("memberships must be a sequence of Membership")
        if membership.organization_id != organization_id:
            raise ValueError("a membership of another organization")
        if membership.user_id in users:
            raise ValueError("two memberships of one user")
        users.add(membership.user_id)


def _check_acceptance(invitation: Invitation, membership: Membership) -> None:
    """The membership a directory store's ``accept_invitation`` writes must be what the
    invitation grants (:meth:`Invitation.membership_for`), never more.

    Raises:
        ValueError: another organization, role or permission set, or a removed membership.
    """
    if membership.organization_id != invitation.organization_id:
        raise ValueError("a membership of another organization than the invitation's")
    if (
        membership.role is not invitation.role
        or membership.permissions != invitation.permissions
        or membership.deleted_at is not None
    ):
        raise ValueError("the membership is not what the invitation grants")
