"""Regression tests for the security review of membership changes and tenancy.

* KEY-4/KEY-5: an API key could grant other members permissions it cannot hold itself; member
  management now takes the acting principal, and API keys may not change memberships at all.
* RBAC-5: the Owner could be given a second, lower membership, and ``resolve_organization``
  then picked whichever came first.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from storno_security.errors import (
    DuplicateMembershipError,
    MembershipNotFoundError,
    PermissionDeniedError,
)
from storno_security.rbac import (
    PERMISSION_INFO,
    Membership,
    Permission,
    PermissionKind,
    Principal,
    Role,
    Scope,
    authorize,
    authorize_member_addition,
    authorize_member_removal,
    authorize_membership_update,
    authorize_ownership_transfer,
    effective_permissions,
    resolve_organization,
)

ORG = "org-1"
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def m(user: str, role: Role, org: str = ORG, **kw: Any) -> Membership:
    return Membership(user_id=user, organization_id=org, role=role, **kw)


def user(member: Membership) -> Principal:
    return Principal.user(member.user_id, organization_id=member.organization_id)


OWNER = m("owner", Role.OWNER)
ADMIN = m("admin", Role.ADMIN)
VIEWER = m("viewer", Role.VIEWER)
ALT = m("attacker-alt", Role.VIEWER)  # the attacker's second user


# --- KEY-4 / KEY-5: the acting principal, not only its membership --------------------------------


@pytest.mark.finding("internal review of rbac")
@pytest.mark.spec("KEY-5")
@pytest.mark.parametrize("creator", [OWNER, ADMIN])
def test_member_manage_key_cannot_promote_a_member_to_admin(creator: Membership) -> None:
    """The review's proof of concept: a key holding only ``member.manage`` passes
    ``authorize``, then tries to make the attacker's second user an Admin (``apikey.manage``
    included)."""
    key = Principal.api_key(creator.user_id, organization_id=ORG, permissions=["member.manage"])
    assert authorize(key, "member.manage", organization_id=ORG, membership=creator)
    assert Permission.APIKEY_MANAGE not in effective_permissions(key, creator)
    with pytest.raises(PermissionDeniedError) as info:
        authorize_membership_update(creator, ALT, principal=key, role=Role.ADMIN)
    assert info.value.reason == "key_forbidden"
    with pytest.raises(PermissionDeniedError):
        authorize_member_addition(
            creator, m("attacker-new", Role.ADMIN), principal=key, existing=()
        )


@pytest.mark.finding("internal review of rbac")
@pytest.mark.spec("KEY-5")
def test_api_keys_never_change_memberships() -> None:
    """Even an admin-scope key of the Owner: member management and ownership transfer need
    the user's own session."""
    key = Principal.api_key("owner", organization_id=ORG, scopes=["admin"], key_id="k1")
    assert Permission.MEMBER_MANAGE in effective_permissions(key, OWNER)
    calls = [
        lambda: authorize_member_addition(OWNER, m("new", Role.VIEWER), principal=key, existing=()),
        lambda: authorize_membership_update(OWNER, VIEWER, principal=key, role=Role.VIEWER),
        lambda: authorize_member_removal(OWNER, VIEWER, principal=key, at=NOW),
        lambda: authorize_ownership_transfer(OWNER, ADMIN, principal=key),
    ]
    for call in calls:
        with pytest.raises(PermissionDeniedError) as info:
            call()
        assert info.value.reason == "key_forbidden"


@pytest.mark.finding("internal review of rbac")
@pytest.mark.spec("KEY-4")
def test_the_principal_must_be_the_actor() -> None:
    stranger = Principal.user("someone-else", organization_id=ORG)
    with pytest.raises(PermissionDeniedError) as info:
        authorize_membership_update(ADMIN, VIEWER, principal=stranger, role=Role.ACCOUNTANT)
    assert info.value.reason == "no_membership"
    elsewhere = Principal.user("admin", organization_id="org-2")
    with pytest.raises(PermissionDeniedError) as info:
        authorize_member_removal(ADMIN, VIEWER, principal=elsewhere, at=NOW)
    assert info.value.reason == "wrong_organization"
    with pytest.raises(TypeError):
        authorize_ownership_transfer(OWNER, ADMIN, principal=OWNER)  # type: ignore[arg-type]


@pytest.mark.finding("internal review of rbac")
def test_the_principal_is_a_required_keyword() -> None:
    with pytest.raises(TypeError):
        authorize_membership_update(ADMIN, VIEWER, role=Role.ACCOUNTANT)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        authorize_member_removal(ADMIN, VIEWER, at=NOW)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        authorize_ownership_transfer(OWNER, ADMIN)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        authorize_member_addition(ADMIN, m("new", Role.VIEWER), existing=())  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        authorize_member_addition(ADMIN, m("new", Role.VIEWER), principal=user(ADMIN))  # type: ignore[call-arg]


@pytest.mark.finding("internal review of rbac")
def test_users_still_manage_members_within_their_permissions() -> None:
    added = authorize_member_addition(
        ADMIN, m("new", Role.ACCOUNTANT), principal=user(ADMIN), existing=()
    )
    assert added.after.role is Role.ACCOUNTANT
    changed = authorize_membership_update(ADMIN, VIEWER, principal=user(ADMIN), role="accountant")
    assert changed.after.role is Role.ACCOUNTANT
    removed = authorize_member_removal(ADMIN, VIEWER, principal=user(ADMIN), at=NOW)
    assert removed.after.deleted_at == NOW
    transfer = authorize_ownership_transfer(OWNER, ADMIN, principal=user(OWNER))
    assert transfer.new_owner.user_id == "admin"


_GRANTABLE = sorted(p for p in Permission if PERMISSION_INFO[p].kind is not PermissionKind.OWNER)
_roles = st.sampled_from(list(Role))
_custom = st.one_of(st.none(), st.frozensets(st.sampled_from(_GRANTABLE)))
_users = st.sampled_from(["a", "b", "c"])
_orgs = st.sampled_from([ORG, "org-2"])


@st.composite
def _memberships(draw: st.DrawFn) -> Membership:
    role = draw(_roles)
    return m(
        draw(_users),
        role,
        org=draw(_orgs),
        permissions=None if role is Role.OWNER else draw(_custom),
    )


@st.composite
def _principals(draw: st.DrawFn) -> Principal:
    user_id, org = draw(_users), draw(_orgs)
    if draw(st.booleans()):
        return Principal.user(user_id, organization_id=org)
    scopes = draw(st.frozensets(st.sampled_from(list(Scope))))
    listed = draw(st.one_of(st.none(), st.frozensets(st.sampled_from(sorted(Permission)))))
    if not scopes and listed is None:
        listed = frozenset({Permission.MEMBER_MANAGE})
    return Principal.api_key(user_id, organization_id=org, scopes=scopes, permissions=listed)


_REFUSED = (PermissionDeniedError, MembershipNotFoundError, ValueError)


@pytest.mark.spec("KEY-4")
@pytest.mark.spec("RBAC-5")
@settings(max_examples=400)
@given(
    principal=_principals(),
    actor=_memberships(),
    target=_memberships(),
    role=_roles,
    permissions=_custom,
    acts_as_actor=st.booleans(),
)
@pytest.mark.finding("internal review of rbac")
def test_no_change_grants_beyond_the_acting_principal(
    principal: Principal,
    actor: Membership,
    target: Membership,
    role: Role,
    permissions: frozenset[Permission] | None,
    acts_as_actor: bool,
) -> None:
    """No membership change ever grants a permission outside the acting principal's
    effective permissions, and none is ever made by an API key."""
    if acts_as_actor:
        principal = attrs.evolve(
            principal, user_id=actor.user_id, organization_id=actor.organization_id
        )
    outcomes = []
    with contextlib.suppress(_REFUSED):
        outcomes.append(
            authorize_membership_update(
                actor, target, principal=principal, role=role, permissions=permissions
            ).after
        )
    new = _as_new_user(target)
    with contextlib.suppress(_REFUSED):
        outcomes.append(
            authorize_member_addition(actor, new, principal=principal, existing=()).after
        )
    with contextlib.suppress(_REFUSED):
        outcomes.append(authorize_ownership_transfer(actor, target, principal=principal).new_owner)
    event("changed" if outcomes else "refused")
    if not outcomes:
        return
    assert not principal.is_api_key
    allowed = effective_permissions(principal, actor)
    for after in outcomes:
        assert after.effective_permissions <= allowed


def _as_new_user(member: Membership) -> Membership:
    return Membership(
        user_id="new-user",
        organization_id=member.organization_id,
        role=member.role,
        permissions=member.permissions,
    )


# --- RBAC-5: one live membership per user and organization ---------------------------------------


@pytest.mark.finding("internal review of rbac")
@pytest.mark.spec("RBAC-5")
def test_the_owner_cannot_be_added_again_as_a_viewer() -> None:
    """The review's proof of concept: an Admin "adds" the Owner's user as a Viewer."""
    with pytest.raises(DuplicateMembershipError) as info:
        authorize_member_addition(
            ADMIN, m("owner", Role.VIEWER), principal=user(ADMIN), existing=[OWNER]
        )
    assert info.value.reason == "already_a_member"
    assert str(info.value) == "already a member of this organization"


@pytest.mark.finding("internal review of rbac")
@pytest.mark.spec("RBAC-5")
def test_any_live_membership_blocks_an_addition_and_removed_ones_do_not() -> None:
    removed = m("viewer", Role.VIEWER, deleted_at=NOW)
    with pytest.raises(DuplicateMembershipError):
        authorize_member_addition(
            ADMIN, m("viewer", Role.ACCOUNTANT), principal=user(ADMIN), existing=[removed, VIEWER]
        )
    # a removed membership, or memberships of other users or organizations, do not block
    others = [removed, m("viewer", Role.ADMIN, org="org-2"), m("someone", Role.VIEWER)]
    change = authorize_member_addition(
        ADMIN, m("viewer", Role.ACCOUNTANT), principal=user(ADMIN), existing=others
    )
    assert change.after.role is Role.ACCOUNTANT
    with pytest.raises(TypeError):
        authorize_member_addition(
            ADMIN,
            m("viewer", Role.VIEWER),
            principal=user(ADMIN),
            existing=["viewer"],  # type: ignore[list-item]
        )


@pytest.mark.finding("internal review of rbac")
@pytest.mark.spec("RBAC-3")
@pytest.mark.spec("RBAC-5")
@pytest.mark.parametrize("header", [None, ORG])
def test_resolve_organization_refuses_duplicate_live_memberships(header: str | None) -> None:
    owner_default = m("owner", Role.OWNER, is_default=True)
    second = m("owner", Role.VIEWER)
    for order in ([owner_default, second], [second, owner_default]):
        with pytest.raises(DuplicateMembershipError) as info:
            resolve_organization(header, user_id="owner", memberships=order)
        assert info.value.reason == "duplicate_membership"
    # a removed duplicate is no duplicate
    gone = m("owner", Role.VIEWER, deleted_at=NOW)
    assert resolve_organization(header, user_id="owner", memberships=[gone, owner_default]) == (
        owner_default
    )
