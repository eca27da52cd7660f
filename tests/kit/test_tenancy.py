"""The kit's membership changes (RBAC-5, RBAC-6): each is decided on the organization as read
and applied only if the organization did not change since; what changed meanwhile is refused,
not overwritten."""

from __future__ import annotations

import uuid

import pytest

from storno_security.errors import ConcurrentChangeError
from storno_security.kit import Session
from tests.kit.conftest import RacedWorld, WorldMaker


def _organization(raced: RacedWorld) -> tuple[Session, Session, Session, str]:
    """An Owner, an Admin and a Viewer of the Owner's organization; its id."""
    owner = raced.register()
    admin = raced.register()
    viewer = raced.register()
    organization_id = raced.join(owner, admin, role="admin")
    raced.join(owner, viewer)
    return owner, admin, viewer, organization_id


def _role(raced: RacedWorld, user_id: str, organization_id: str) -> str | None:
    for membership in raced.kit.directory.memberships_of(user_id):
        if membership.organization_id == organization_id and membership.deleted_at is None:
            return membership.role.value
    return None


def test_authorizing_a_company_needs_the_kit_to_know_companies(make_world: WorldMaker) -> None:
    world = make_world(companies=None)
    caller = world.caller(world.register())
    assert world.kit.authorize(caller, "org.view").permission.value == "org.view"
    company = str(uuid.uuid4())
    with pytest.raises(TypeError, match="without a company lookup"):
        world.kit.authorize(caller, "company.view", company=company)
    with pytest.raises(TypeError, match="without a company lookup"):
        world.kit.authorize(caller, "company.view", company_required=True)


@pytest.mark.spec("RBAC-5")
def test_a_manager_removed_meanwhile_changes_nothing(raced: RacedWorld) -> None:
    owner, admin, viewer, organization_id = _organization(raced)
    admin_caller = raced.caller(admin)  # authorized while still an Admin ...
    raced.meanwhile.before(
        "members_of",  # ... and removed before the members are read
        lambda: raced.kit.remove_member(raced.caller(owner), admin.user.user_id),
    )
    with pytest.raises(ConcurrentChangeError) as info:
        raced.kit.update_member(
            admin_caller, viewer.user.user_id, role="accountant", organization=organization_id
        )
    assert info.value.reason == "changed_meanwhile"
    assert raced.meanwhile.pending == []
    assert _role(raced, viewer.user.user_id, organization_id) == "viewer"
    assert _role(raced, admin.user.user_id, organization_id) is None


@pytest.mark.spec("RBAC-5")
@pytest.mark.spec("RBAC-6")
def test_a_role_change_decided_on_an_older_organization_is_not_applied(
    raced: RacedWorld,
) -> None:
    owner, admin, viewer, organization_id = _organization(raced)
    # the Admin is demoted between the Admin's decision and its write
    raced.meanwhile.before(
        "apply_memberships",
        lambda: raced.kit.update_member(raced.caller(owner), admin.user.user_id, role="viewer"),
    )
    with pytest.raises(ConcurrentChangeError) as info:
        raced.kit.update_member(
            raced.caller(admin),
            viewer.user.user_id,
            role="accountant",
            organization=organization_id,
        )
    assert info.value.reason == "changed_meanwhile"
    assert raced.meanwhile.pending == []
    assert _role(raced, viewer.user.user_id, organization_id) == "viewer"
    assert _role(raced, admin.user.user_id, organization_id) == "viewer"
    assert [e.subject_id for e in raced.events.of("member.role_changed")] == [admin.user.user_id]
