"""Membership changes (RBAC-5): no self-promotion, Owner protected, no cross-organization acts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storno_security.errors import MembershipNotFoundError, PermissionDeniedError
from storno_security.rbac import (
    PERMISSION_INFO,
    ROLE_PERMISSIONS,
    Membership,
    MembershipAction,
    Permission,
    PermissionKind,
    Principal,
    Role,
    authorize_member_addition,
    authorize_member_removal,
    authorize_membership_update,
    authorize_ownership_transfer,
)

ORG = "org-1"
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def u(actor: Membership) -> Principal:
    """The user behind ``actor``, acting through that membership."""
    return Principal.user(actor.user_id, organization_id=actor.organization_id)


def m(user: str, role: Role, org: str = ORG, **kw: object) -> Membership:
    return Membership(user_id=user, organization_id=org, role=role, **kw)  # type: ignore[arg-type]


def _denied(authorize: Callable[..., object], *args: Any, **kwargs: Any) -> str:
    """Why ``authorize(*args, **kwargs)`` is denied; fails the test if it is allowed."""
    with pytest.raises(PermissionDeniedError) as info:
        authorize(*args, **kwargs)
    return info.value.reason


def _manager(user: str) -> Membership:
    """An accountant who also holds ``member.manage``."""
    return m(
        user, Role.ACCOUNTANT, permissions=[*ROLE_PERMISSIONS[Role.ACCOUNTANT], "member.manage"]
    )


OWNER = m("owner", Role.OWNER)
ADMIN = m("admin", Role.ADMIN)
ADMIN2 = m("admin2", Role.ADMIN)
ACCOUNTANT = m("acc", Role.ACCOUNTANT)
VIEWER = m("viewer", Role.VIEWER)


@pytest.mark.spec("RBAC-5")
def test_admin_changes_roles_below_owner() -> None:
    change = authorize_membership_update(ADMIN, VIEWER, role=Role.ACCOUNTANT, principal=u(ADMIN))
    assert change.action is MembershipAction.UPDATE
    assert change.before == VIEWER
    assert change.after.role is Role.ACCOUNTANT
    assert change.after.user_id == "viewer"
    assert (
        authorize_membership_update(ADMIN, ADMIN2, role="viewer", principal=u(ADMIN)).after.role
        is Role.VIEWER
    )
    assert (
        authorize_membership_update(OWNER, ADMIN, role=Role.VIEWER, principal=u(OWNER)).after.role
        is Role.VIEWER
    )


@pytest.mark.spec("RBAC-5")
@pytest.mark.parametrize("actor", [ACCOUNTANT, VIEWER])
def test_only_member_manage_changes_members(actor: Membership) -> None:
    assert (
        _denied(
            authorize_membership_update, actor, VIEWER, role=Role.ACCOUNTANT, principal=u(actor)
        )
        == "no_member_manage"
    )
    _denied(authorize_member_removal, actor, VIEWER, at=NOW, principal=u(actor))
    _denied(
        authorize_member_addition, actor, m("new", Role.VIEWER), principal=u(actor), existing=()
    )


@pytest.mark.spec("RBAC-5")
def test_nobody_raises_their_own_role() -> None:
    self_manager = _manager("acc")
    assert (
        _denied(
            authorize_membership_update,
            self_manager,
            self_manager,
            role=Role.ADMIN,
            principal=u(self_manager),
        )
        == "self_promotion"
    )
    with pytest.raises(PermissionDeniedError) as info:
        authorize_membership_update(
            self_manager,
            self_manager,
            role=Role.ACCOUNTANT,
            permissions=[*self_manager.effective_permissions, "audit.view"],
            principal=u(self_manager),
        )
    assert info.value.reason == "self_promotion"
    # lowering oneself is allowed
    lower = authorize_membership_update(ADMIN, ADMIN, role=Role.VIEWER, principal=u(ADMIN))
    assert lower.after.role is Role.VIEWER


@pytest.mark.spec("RBAC-5")
def test_nobody_grants_more_than_they_hold_or_acts_above_their_rank() -> None:
    manager = _manager("mgr")
    assert (
        _denied(authorize_membership_update, manager, VIEWER, role=Role.ADMIN, principal=u(manager))
        == "grant_exceeds_actor"
    )
    assert (
        _denied(authorize_membership_update, manager, ADMIN, role=Role.VIEWER, principal=u(manager))
        == "target_outranks_actor"
    )
    _denied(authorize_member_removal, manager, ADMIN, at=NOW, principal=u(manager))
    _denied(
        authorize_member_addition, manager, m("new", Role.ADMIN), principal=u(manager), existing=()
    )


@pytest.mark.spec("RBAC-5")
@pytest.mark.parametrize("actor", [OWNER, ADMIN])
def test_owner_cannot_be_demoted_or_removed(actor: Membership) -> None:
    for role in (Role.ADMIN, Role.VIEWER):
        assert (
            _denied(authorize_membership_update, actor, OWNER, role=role, principal=u(actor))
            == "owner_protected"
        )
    assert (
        _denied(authorize_member_removal, actor, OWNER, at=NOW, principal=u(actor))
        == "owner_protected"
    )


@pytest.mark.spec("RBAC-5")
def test_nobody_becomes_owner_except_by_transfer_from_the_owner() -> None:
    assert (
        _denied(authorize_membership_update, OWNER, ADMIN, role=Role.OWNER, principal=u(OWNER))
        == "owner_by_transfer_only"
    )
    _denied(authorize_member_addition, OWNER, m("new", Role.OWNER), principal=u(OWNER), existing=())
    for actor in (ADMIN, ACCOUNTANT, VIEWER):
        assert (
            _denied(authorize_ownership_transfer, actor, ADMIN2, principal=u(actor)) == "not_owner"
        )
    transfer = authorize_ownership_transfer(OWNER, ADMIN, principal=u(OWNER))
    assert transfer.new_owner.role is Role.OWNER
    assert transfer.new_owner.user_id == "admin"
    assert transfer.former_owner.role is Role.ADMIN
    assert transfer.former_owner.user_id == "owner"
    _denied(authorize_ownership_transfer, OWNER, OWNER, principal=u(OWNER))


@pytest.mark.spec("RBAC-5")
def test_memberships_of_another_organization_are_not_found() -> None:
    foreign = m("viewer", Role.VIEWER, org="org-2")
    with pytest.raises(MembershipNotFoundError):
        authorize_membership_update(ADMIN, foreign, role=Role.ACCOUNTANT, principal=u(ADMIN))
    with pytest.raises(MembershipNotFoundError):
        authorize_member_removal(ADMIN, foreign, at=NOW, principal=u(ADMIN))
    with pytest.raises(MembershipNotFoundError):
        authorize_ownership_transfer(OWNER, foreign, principal=u(OWNER))
    with pytest.raises(MembershipNotFoundError):
        authorize_membership_update(ADMIN, None, role=Role.VIEWER, principal=u(ADMIN))
    assert (
        _denied(
            authorize_member_addition,
            ADMIN,
            m("new", Role.VIEWER, org="org-2"),
            principal=u(ADMIN),
            existing=(),
        )
        == "other_organization"
    )


@pytest.mark.spec("RBAC-4")
def test_removal_is_a_soft_deletion_and_removed_members_act_no_more() -> None:
    change = authorize_member_removal(ADMIN, ACCOUNTANT, at=NOW, principal=u(ADMIN))
    assert change.after.deleted_at == NOW
    assert change.after.effective_permissions == frozenset()
    with pytest.raises(MembershipNotFoundError):
        authorize_member_removal(ADMIN, change.after, at=NOW, principal=u(ADMIN))
    removed_admin = m("admin", Role.ADMIN, deleted_at=NOW)
    assert (
        _denied(
            authorize_membership_update,
            removed_admin,
            VIEWER,
            role=Role.ACCOUNTANT,
            principal=u(removed_admin),
        )
        == "actor_removed"
    )


def test_addition_allowed_within_the_actor_rank() -> None:
    new = m("new", Role.ACCOUNTANT)
    change = authorize_member_addition(ADMIN, new, principal=u(ADMIN), existing=())
    assert change.action is MembershipAction.ADD
    assert change.before is None
    assert change.after == new
    with pytest.raises(ValueError, match="removed"):
        authorize_member_addition(
            ADMIN, m("new", Role.VIEWER, deleted_at=NOW), principal=u(ADMIN), existing=()
        )


roles = st.sampled_from([Role.ADMIN, Role.ACCOUNTANT, Role.VIEWER, Role.OWNER])
custom = st.one_of(
    st.none(),
    st.frozensets(
        st.sampled_from(
            sorted(p for p in Permission if PERMISSION_INFO[p].kind is not PermissionKind.OWNER)
        )
    ),
)


@st.composite
def memberships(draw: st.DrawFn) -> Membership:
    role = draw(roles)
    return m(
        draw(st.sampled_from(["a", "b", "c"])),
        role,
        org=draw(st.sampled_from([ORG, "org-2"])),
        permissions=None if role is Role.OWNER else draw(custom),
    )


@pytest.mark.spec("RBAC-5")
@given(actor=memberships(), target=memberships(), role=roles, permissions=custom)
def test_no_change_ever_escalates(
    actor: Membership, target: Membership, role: Role, permissions: frozenset[Permission] | None
) -> None:
    try:
        change = authorize_membership_update(
            actor, target, role=role, permissions=permissions, principal=u(actor)
        )
    except (PermissionDeniedError, MembershipNotFoundError, ValueError):
        return
    assert actor.organization_id == target.organization_id
    assert Permission.MEMBER_MANAGE in actor.effective_permissions
    assert target.role is not Role.OWNER
    assert change.after.role is not Role.OWNER
    assert change.after.effective_permissions <= actor.effective_permissions
    if actor.user_id == target.user_id:
        assert change.after.effective_permissions <= target.effective_permissions


def test_memberships_of_the_wrong_type_are_caller_errors() -> None:
    record = {"user_id": "admin", "organization_id": ORG, "role": "admin"}
    with pytest.raises(TypeError, match="actor must be a Membership"):
        authorize_membership_update(record, VIEWER, principal=u(ADMIN), role=Role.VIEWER)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="target must be a Membership or None"):
        authorize_member_removal(ADMIN, record, principal=u(ADMIN), at=NOW)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="new must be a Membership"):
        authorize_member_addition(ADMIN, record, principal=u(ADMIN), existing=())  # type: ignore[arg-type]
    new = m("new", Role.VIEWER)
    for existing in (VIEWER, 7):
        with pytest.raises(TypeError, match="existing must be an iterable of Membership"):
            authorize_member_addition(ADMIN, new, principal=u(ADMIN), existing=existing)  # type: ignore[arg-type]
    added = authorize_member_addition(ADMIN, new, principal=u(ADMIN), existing=[VIEWER])
    assert added.after == new
