"""Membership changes over HTTP (RBAC-5, KEY-5) and organization selection (RBAC-3).

Each rule is checked by a request that the rule alone refuses, and by what is stored
afterwards: a refused change leaves the membership as it was.
"""

from __future__ import annotations

from typing import Any

import pytest

from reference_server.wiring import Server
from storno_security.audit import SecurityEventType
from tests.server.api import FalconApi, User
from tests.server.data_support import meanwhile
from tests.server.tenancy_support import (
    INVITATIONS,
    MEMBERS,
    add_member,
    invite,
)
from tests.server.tenancy_support import user as _user


def _role_of(server: Server, user: User, organization_id: str) -> tuple[str, Any, Any]:
    (member,) = [
        r.membership
        for r in server.kit.directory.members_of(organization_id)
        if r.membership.user_id == user.user_id
    ]
    custom = None if member.permissions is None else sorted(p.value for p in member.permissions)
    return member.role.value, custom, member.deleted_at


def _events(server: Server, organization_id: str, kind: SecurityEventType) -> list[Any]:
    return server.kit.audit.store.query(organization_id=organization_id, types=[kind])


@pytest.fixture
def team(falcon_api: FalconApi) -> dict[str, User]:
    """An Owner, an Admin, a limited Admin (member.manage but few other rights), a Viewer."""
    owner, admin, limited, viewer = (_user(falcon_api) for _ in range(4))
    add_member(owner, admin, "admin")
    add_member(
        owner,
        limited,
        "admin",
        permissions=["member.view", "member.manage", "invoice.view", "company.view"],
    )
    add_member(owner, viewer, "viewer")
    return {"owner": owner, "admin": admin, "limited": limited, "viewer": viewer}


def test_member_list_and_item(team: dict[str, User]) -> None:
    owner, viewer = team["owner"], team["viewer"]
    listed = owner.get(MEMBERS)
    assert listed.status == 200
    by_id = {m["user_id"]: m for m in listed.json["items"]}
    assert set(by_id) == {u.user_id for u in team.values()}
    assert by_id[team["limited"].user_id]["permissions"] == [
        "company.view",
        "invoice.view",
        "member.manage",
        "member.view",
    ]
    assert by_id[owner.user_id]["permissions"] is None
    assert len(by_id[owner.user_id]["effective_permissions"]) == 50
    one = owner.get(f"{MEMBERS}/{viewer.user_id}")
    assert (one.status, one.json["role"], one.json["email"]) == (200, "viewer", viewer.email)
    # A Viewer may not list members (member.view is an admin permission).
    assert viewer.get(MEMBERS, organization=owner.organization_id).status == 403


@pytest.mark.spec("RBAC-5")
def test_self_promotion_is_refused(team: dict[str, User], server: Server) -> None:
    limited, owner = team["limited"], team["owner"]
    org = owner.organization_id
    before = _role_of(server, limited, org)
    for change in (
        {"role": "admin"},  # the role's defaults are more than the custom set
        {"permissions": ["member.view", "member.manage", "invoice.view", "company.manage"]},
    ):
        response = limited.patch(f"{MEMBERS}/{limited.user_id}", change, organization=org)
        assert (response.status, response.json["code"]) == (403, "forbidden"), change
    assert _role_of(server, limited, org) == before
    denied = _events(server, org, SecurityEventType.ACCESS_DENIED)
    assert {e.details["reason"] for e in denied} == {"self_promotion"}
    assert all(e.actor_id == limited.user_id for e in denied)
    # Lowering oneself is allowed.
    lower = limited.patch(
        f"{MEMBERS}/{limited.user_id}",
        {"permissions": ["member.view", "member.manage", "invoice.view"]},
        organization=org,
    )
    assert lower.status == 200, lower.json


@pytest.mark.spec("RBAC-5")
def test_the_owner_cannot_be_demoted_or_removed(team: dict[str, User], server: Server) -> None:
    owner, admin = team["owner"], team["admin"]
    org = owner.organization_id
    target = f"{MEMBERS}/{owner.user_id}"
    for response in (
        admin.patch(target, {"role": "viewer"}, organization=org),
        admin.delete(target, organization=org),
        owner.patch(target, {"role": "admin"}),  # not even by themselves
        owner.delete(target),
    ):
        assert (response.status, response.json["code"]) == (403, "forbidden")
    # A custom set for the Owner is refused as invalid input (an Owner holds every
    # permission, so the library refuses to build the record before the Owner check).
    custom = admin.patch(target, {"permissions": ["invoice.view"]}, organization=org)
    assert (custom.status, custom.json["field"]) == (400, "permissions")
    assert _role_of(server, owner, org) == ("owner", None, None)
    # Nobody becomes Owner except by transfer.
    promote = owner.patch(f"{MEMBERS}/{admin.user_id}", {"role": "owner"})
    assert promote.status == 403
    newcomer = _user(owner.api)
    assert owner.post(MEMBERS, {"email": newcomer.email, "role": "owner"}).status == 403


@pytest.mark.spec("RBAC-5")
def test_nobody_grants_or_touches_more_than_they_hold(team: dict[str, User]) -> None:
    limited, admin, owner = team["limited"], team["admin"], team["owner"]
    org = {"organization": owner.organization_id}
    newcomer = _user(owner.api)
    # The limited admin cannot hand out the Admin defaults it does not hold...
    assert limited.post(MEMBERS, {"email": newcomer.email, "role": "admin"}, **org).status == 403
    # ...nor change or remove a member who holds more.
    assert limited.patch(f"{MEMBERS}/{admin.user_id}", {"role": "viewer"}, **org).status == 403
    assert limited.delete(f"{MEMBERS}/{admin.user_id}", **org).status == 403
    # Within its own rights it may invite.
    added = limited.post(
        MEMBERS, {"email": newcomer.email, "role": "viewer", "permissions": ["invoice.view"]}, **org
    )
    assert added.status == 202, added.json


@pytest.mark.spec("RBAC-5")
def test_another_organizations_membership_is_not_found(
    team: dict[str, User], falcon_api: FalconApi, server: Server
) -> None:
    owner = team["owner"]
    stranger = _user(falcon_api)
    for response in (
        owner.get(f"{MEMBERS}/{stranger.user_id}"),
        owner.patch(f"{MEMBERS}/{stranger.user_id}", {"role": "viewer"}),
        owner.delete(f"{MEMBERS}/{stranger.user_id}"),
        owner.post(f"{MEMBERS}/transfer-ownership", {"user_id": stranger.user_id}),
        owner.patch(f"{MEMBERS}/not-a-uuid", {"role": "viewer"}),
        owner.delete(f"{MEMBERS}/{'0' * 36}"),
    ):
        assert (response.status, response.json["code"]) == (404, "not_found")
    assert _role_of(server, stranger, stranger.organization_id) == ("owner", None, None)
    # Naming the stranger's organization does not make it the owner's.
    response = owner.delete(f"{MEMBERS}/{stranger.user_id}", organization=stranger.organization_id)
    assert (response.status, response.json["code"]) == (404, "not_found")


@pytest.mark.spec("KEY-5")
def test_an_api_key_never_changes_memberships(team: dict[str, User], server: Server) -> None:
    owner, viewer = team["owner"], team["viewer"]
    org = owner.organization_id
    key = server.kit.api_keys.create(owner.user_id, org, name="automation", scope="admin").key
    api = owner.api
    # The key works: it may read the members (member.view is in its scope)...
    assert api.get(MEMBERS, api_key=key).status == 200
    newcomer = _user(api)
    # ...but every change is refused (KEY-5), even by an Owner's admin key.
    for response in (
        api.post(MEMBERS, {"email": newcomer.email, "role": "viewer"}, api_key=key),
        api.patch(f"{MEMBERS}/{viewer.user_id}", {"role": "accountant"}, api_key=key),
        api.delete(f"{MEMBERS}/{viewer.user_id}", api_key=key),
        api.post(f"{MEMBERS}/transfer-ownership", {"user_id": viewer.user_id}, api_key=key),
    ):
        assert (response.status, response.json["code"]) == (403, "forbidden")
    assert _role_of(server, viewer, org) == ("viewer", None, None)
    reasons = {e.details["reason"] for e in _events(server, org, SecurityEventType.ACCESS_DENIED)}
    assert reasons == {"key_forbidden"}


@pytest.mark.spec("RBAC-4")
@pytest.mark.spec("ACC-3")
def test_add_change_remove_and_readd_are_audited(
    team: dict[str, User], falcon_api: FalconApi, server: Server
) -> None:
    owner, viewer = team["owner"], team["viewer"]
    org = owner.organization_id
    changed = owner.patch(f"{MEMBERS}/{viewer.user_id}", {"role": "accountant"})
    assert (changed.status, changed.json["role"]) == (200, "accountant")
    custom = owner.patch(f"{MEMBERS}/{viewer.user_id}", {"permissions": ["invoice.view"]})
    assert (custom.json["role"], custom.json["effective_permissions"]) == (
        "accountant",
        ["invoice.view"],
    )
    # Changing the role without a set goes back to the role's defaults.
    reset = owner.patch(f"{MEMBERS}/{viewer.user_id}", {"role": "viewer"})
    assert reset.json["permissions"] is None

    # The viewer works in the organization until removed; then the next request fails.
    company = owner.post("/api/v1/companies", {"name": "Co", "country": "DE"}).json["id"]
    assert viewer.get("/api/v1/invoices", organization=org, company=company).status == 200
    assert owner.delete(f"{MEMBERS}/{viewer.user_id}").status == 204
    gone = viewer.get("/api/v1/invoices", organization=org, company=company)
    assert (gone.status, gone.json["code"]) == (404, "not_found")
    assert viewer.user_id not in {m["user_id"] for m in owner.get(MEMBERS).json["items"]}
    _, _, deleted_at = _role_of(server, viewer, org)
    assert deleted_at is not None  # the row is kept (RBAC-4)
    assert owner.delete(f"{MEMBERS}/{viewer.user_id}").status == 404
    assert owner.patch(f"{MEMBERS}/{viewer.user_id}", {"role": "viewer"}).status == 404
    # The viewer's own organization is untouched.
    assert viewer.get("/api/v1/companies").status == 200

    # Invited back and accepted: a live membership again (the row is revived).
    add_member(owner, viewer, "viewer")
    assert viewer.get("/api/v1/invoices", organization=org, company=company).status == 200

    kinds = {
        SecurityEventType.INVITATION_SENT: 3 + 1,  # the team, then the re-addition
        SecurityEventType.ROLE_CHANGED: 3,
        SecurityEventType.MEMBER_REMOVED: 1,
    }
    for kind, count in kinds.items():
        events = _events(server, org, kind)
        assert len(events) == count, kind
        assert all(e.actor_id == owner.user_id for e in events)
    # Joining is the member's own act (accepting), audited with the member as the actor.
    added = _events(server, org, SecurityEventType.MEMBER_ADDED)
    assert len(added) == 3 + 1
    assert sorted(e.actor_id for e in added).count(viewer.user_id) == 2
    assert {e.actor_id for e in added} == {u.user_id for u in team.values() if u is not owner}
    removed = _events(server, org, SecurityEventType.MEMBER_REMOVED)[0]
    assert (removed.subject_id, removed.details["role"]) == (viewer.user_id, "viewer")


def test_adding_validates_and_refuses_duplicates(
    team: dict[str, User], falcon_api: FalconApi
) -> None:
    owner, viewer = team["owner"], team["viewer"]
    fresh = _user(falcon_api)
    cases: list[tuple[Any, int, str | None]] = [
        # A member and an unknown address: the same answer as anyone (no enumeration).
        ({"email": viewer.email, "role": "viewer"}, 202, None),
        ({"email": "nobody-here@example.eu", "role": "viewer"}, 202, None),
        ({"email": "not an email", "role": "viewer"}, 422, "email"),
        ({"email": fresh.email, "role": "boss"}, 400, "role"),
        ({"email": fresh.email, "role": 3}, 400, "role"),
        ({"email": fresh.email}, 400, "role"),
        ({"role": "viewer"}, 400, "email"),
        (
            {"email": fresh.email, "role": "viewer", "permissions": ["invoice.fly"]},
            400,
            "permissions",
        ),
        (
            {"email": fresh.email, "role": "viewer", "permissions": "invoice.view"},
            400,
            "permissions",
        ),
        ({"email": fresh.email, "role": "viewer", "permissions": [1]}, 400, "permissions"),
        # Owner-only permissions are never in a custom set.
        (
            {"email": fresh.email, "role": "admin", "permissions": ["org.delete"]},
            400,
            "permissions",
        ),
        ({"email": fresh.email, "role": "viewer", "admin": True}, 400, "admin"),
        ({"email": ["x"], "role": "viewer"}, 400, "email"),
    ]
    for body, status, field in cases:
        response = owner.post(MEMBERS, body)
        assert response.status == status, (body, response.json)
        assert response.json.get("field") == field, body
    assert owner.post(MEMBERS, [1, 2]).status == 400
    assert owner.post(MEMBERS, raw=b"{", content_type="application/json").status == 400
    assert fresh.user_id not in {m["user_id"] for m in owner.get(MEMBERS).json["items"]}
    patch = owner.patch(f"{MEMBERS}/{viewer.user_id}", {})
    assert patch.status == 400
    patch = owner.patch(f"{MEMBERS}/{viewer.user_id}", {"role": None, "permissions": None})
    assert patch.status == 400


@pytest.mark.spec("RBAC-5")
def test_ownership_transfer(team: dict[str, User], server: Server) -> None:
    owner, admin, viewer = team["owner"], team["admin"], team["viewer"]
    org = owner.organization_id
    # Only the Owner may transfer; not to themselves.
    refused = admin.post(
        f"{MEMBERS}/transfer-ownership", {"user_id": viewer.user_id}, organization=org
    )
    assert refused.status == 403
    to_self = owner.post(f"{MEMBERS}/transfer-ownership", {"user_id": owner.user_id})
    assert to_self.status == 403
    for body, status in (
        ({}, 400),
        ({"user_id": 5}, 400),
        ({"user_id": viewer.user_id, "x": 1}, 400),
        ({"user_id": "x"}, 404),
    ):
        assert owner.post(f"{MEMBERS}/transfer-ownership", body).status == status, body

    done = owner.post(f"{MEMBERS}/transfer-ownership", {"user_id": admin.user_id})
    assert done.status == 200, done.json
    roles = {m["user_id"]: m["role"] for m in done.json["items"]}
    assert (roles[owner.user_id], roles[admin.user_id]) == ("admin", "owner")
    assert _role_of(server, admin, org)[0] == "owner"
    # The former Owner is an Admin now: no second transfer, and the new Owner is protected.
    again = owner.post(f"{MEMBERS}/transfer-ownership", {"user_id": viewer.user_id})
    assert again.status == 403
    assert owner.delete(f"{MEMBERS}/{admin.user_id}").status == 403
    (event,) = _events(server, org, SecurityEventType.OWNERSHIP_TRANSFERRED)
    assert (event.actor_id, event.subject_id) == (owner.user_id, admin.user_id)
    assert event.details["former_owner_role"] == "admin"


@pytest.mark.spec("RBAC-3")
def test_organization_selection(team: dict[str, User], server: Server) -> None:
    owner, viewer = team["owner"], team["viewer"]
    theirs = owner.post("/api/v1/companies", {"name": "Owner Co", "country": "FR"}).json["id"]
    mine = viewer.post("/api/v1/companies", {"name": "Viewer Co", "country": "IT"})
    assert mine.status == 201  # Owner of their own organization, the default one
    default = viewer.get("/api/v1/companies").json["items"]
    assert [c["id"] for c in default] == [mine.json["id"]]
    chosen = viewer.get("/api/v1/companies", organization=owner.organization_id).json["items"]
    assert [c["id"] for c in chosen] == [theirs]
    # In the owner's organization the viewer is only a Viewer.
    create = viewer.post(
        "/api/v1/companies", {"name": "No", "country": "FR"}, organization=owner.organization_id
    )
    assert create.status == 403
    for header in ("not-a-uuid", "0" * 300, team["limited"].organization_id):
        answer = viewer.get("/api/v1/companies", organization=header)
        assert (answer.status, answer.json["code"]) == (404, "not_found"), header


def test_a_concurrent_acceptance_is_a_conflict_not_a_500(
    team: dict[str, User], server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The membership appears between the check and the write: 409, the invitation stays.

    (Before the kit this answered ``already_a_member``; now the write is refused as a
    ``conflict``, and a retry answers ``already_a_member``.)"""
    owner, viewer = team["owner"], team["viewer"]
    invite(owner, viewer.email, "accountant")
    directory = server.kit.directory
    (pending,) = [
        i.invitation_id
        for i in directory.invitations(organization_id=owner.organization_id)
        if i.email == viewer.email and i.accepted_at is None
    ]
    real = directory.memberships_of

    def stale(user_id: str) -> list[Any]:
        # The check ran before the other request stored its row.
        return [] if user_id == viewer.user_id else real(user_id)

    monkeypatch.setattr(directory, "memberships_of", stale)
    response = viewer.post(f"{INVITATIONS}/{pending}/accept")
    assert (response.status, response.json["code"]) == (409, "conflict")
    monkeypatch.undo()
    again = viewer.post(f"{INVITATIONS}/{pending}/accept")
    assert (again.status, again.json["code"]) == (409, "already_a_member")
    assert owner.get(f"{MEMBERS}/{viewer.user_id}").json["role"] == "viewer"
    stored = directory.get_invitation(pending)
    assert stored is not None
    assert stored.accepted_at is None  # nothing was written


# Review r-authz, finding 6 (MEDIUM): membership without consent made a stranger the Owner of
# the attacker's organization, which then blocked the victim's account deletion (409).
@pytest.mark.spec("RBAC-5")
@pytest.mark.spec("ACC-4")
def test_nobody_can_be_made_an_owner_without_consent(falcon_api: FalconApi, server: Server) -> None:
    attacker = falcon_api.register()
    victim = falcon_api.with_ip().register()
    attacker.post(MEMBERS, {"email": victim.email, "role": "admin"})
    moved = attacker.post(f"{MEMBERS}/transfer-ownership", {"user_id": victim.user_id})
    assert moved.status == 404, moved.json  # an invited user is not a member
    # Nothing blocks the victim's account deletion (the kit's flow behind DELETE /api/v1/me).
    assert server.kit.owned_organizations_with_members(victim.user_id) == []
    caller = server.kit.authenticate(f"Bearer {victim.access_token}")
    server.kit.delete_account(caller, current_password=victim.password)


def test_a_member_removed_while_their_role_changes_is_not_found(
    team: dict[str, User], server: Server
) -> None:
    owner, viewer = team["owner"], team["viewer"]
    org = owner.organization_id
    owner_caller = server.kit.authenticate(f"Bearer {owner.access_token}")
    assert owner_caller is not None

    def another_request_removes_them() -> object:
        return server.kit.remove_member(owner_caller, viewer.user_id, organization=org)

    # after the role change is written, before the answer reads the member back
    with meanwhile(SecurityEventType.ROLE_CHANGED, another_request_removes_them) as removed:
        changed = owner.patch(f"{MEMBERS}/{viewer.user_id}", {"role": "accountant"})
    assert len(removed) == 1
    assert (changed.status, changed.json["code"]) == (404, "not_found")
    role, _, deleted_at = _role_of(server, viewer, org)
    assert (role, deleted_at is not None) == ("accountant", True)
    assert viewer.user_id not in {m["user_id"] for m in owner.get(MEMBERS).json["items"]}
