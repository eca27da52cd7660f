"""Invitations (RBAC-5, KEY-5, ACC-1): nobody becomes a member without accepting.

``POST /api/v1/members`` invites; the invited user accepts or declines; the organization lists
and withdraws its pending invitations. Every answer of the inviting side is the same whether or
not the address is registered, and a pending invitation is never a membership.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from reference_server import db
from reference_server.resources.tenancy import INVITATION_LIFETIME
from reference_server.services import Services
from storno_security.audit import SecurityEventType
from storno_security.clock import FrozenClock
from tests.server.api import FalconApi, User, fresh_email
from tests.server.tenancy_support import INVITATIONS, MEMBERS, accept, add_member, invite

Mailbox = Callable[[], list[dict[str, str]]]
ORG_INVITATIONS = f"{MEMBERS}/invitations"


def _user(api: FalconApi) -> User:
    return api.with_ip().register()


def _rows(services: Services, organization_id: str) -> list[Any]:
    i = db.invitations
    with services.db.transaction() as conn:
        return list(
            conn.execute(
                sa.select(i).where(i.c.organization_id == organization_id).order_by(i.c.created_at)
            ).mappings()
        )


def _only_invitation(services: Services, organization_id: str, user: User) -> str:
    ids = [r["id"] for r in _rows(services, organization_id) if r["user_id"] == user.user_id]
    assert len(ids) == 1, ids
    return str(ids[0])


def _relogin(*users: User) -> None:
    """Fresh access tokens after the frozen clock moved past the old ones."""
    for user in users:
        response = user.api.post("/api/auth", {"email": user.email, "password": user.password})
        assert response.status == 200, response.json
        user.access_token = response.json["access_token"]


def _is_member(owner: User, user: User) -> bool:
    listed = owner.get(MEMBERS).json["items"]
    return user.user_id in {m["user_id"] for m in listed}


@pytest.mark.spec("RBAC-5")
def test_an_invitation_is_not_a_membership_until_accepted(
    falcon_api: FalconApi, services: Services, falcon_mailbox: Mailbox
) -> None:
    owner, invitee = _user(falcon_api), _user(falcon_api)
    org = owner.organization_id
    invite(owner, invitee.email, "accountant")
    (mail,) = [m for m in falcon_mailbox() if m["to"] == invitee.email]
    assert "invited to" in mail["subject"]
    assert "Nothing changes unless you accept" in mail["body"]

    # Pending: not listed, not usable, not transferable-to.
    assert not _is_member(owner, invitee)
    assert invitee.get("/api/v1/companies", organization=org).status == 404
    transfer = owner.post(f"{MEMBERS}/transfer-ownership", {"user_id": invitee.user_id})
    assert (transfer.status, transfer.json["code"]) == (404, "not_found")
    assert (
        services.audit.store.query(organization_id=org, types=[SecurityEventType.MEMBER_ADDED])
        == []
    )

    mine = invitee.get(INVITATIONS)
    assert mine.status == 200
    (item,) = mine.json["items"]
    assert (item["organization_id"], item["role"], item["permissions"]) == (org, "accountant", None)
    assert item["invited_by_name"] == "Test User"
    assert item["organization_name"]

    member = accept(invitee, org)
    assert (member["user_id"], member["role"]) == (invitee.user_id, "accountant")
    assert _is_member(owner, invitee)
    assert invitee.get("/api/v1/companies", organization=org).status == 200
    assert invitee.get(INVITATIONS).json["items"] == []
    (event,) = services.audit.store.query(
        organization_id=org, types=[SecurityEventType.MEMBER_ADDED]
    )
    assert (event.actor_id, event.subject_id, event.details["role"]) == (
        owner.user_id,
        invitee.user_id,
        "accountant",
    )
    # Now a live member: the transfer is possible.
    moved = owner.post(f"{MEMBERS}/transfer-ownership", {"user_id": invitee.user_id})
    assert moved.status == 200, moved.json


@pytest.mark.spec("ACC-1")
def test_the_inviting_side_cannot_tell_a_registered_address(
    falcon_api: FalconApi, services: Services, falcon_mailbox: Mailbox
) -> None:
    owner, registered = _user(falcon_api), _user(falcon_api)
    nobody = fresh_email("nobody")
    answers = [
        owner.post(MEMBERS, {"email": email, "role": "viewer"})
        for email in (registered.email, nobody)
    ]
    assert [(a.status, a.json) for a in answers] == [(202, {"status": "invited"})] * 2
    assert answers[0].headers.keys() == answers[1].headers.keys()
    # The organization's list shows two alike pending invitations and no one's identity.
    listed = owner.get(ORG_INVITATIONS)
    assert listed.status == 200
    items = listed.json["items"]
    assert len(items) == 2
    assert {frozenset(i) for i in items} == {
        frozenset({"id", "role", "permissions", "invited_by", "created_at", "expires_at"})
    }
    assert registered.email not in listed.body.decode()
    assert registered.user_id not in listed.body.decode()
    # The unregistered address is stored nowhere and gets no mail.
    assert [r["user_id"] for r in _rows(services, owner.organization_id)] == [
        registered.user_id,
        None,
    ]
    assert nobody not in str(_rows(services, owner.organization_id))
    assert [m["to"] for m in falcon_mailbox()] == [registered.email]


def test_one_mail_per_organization_and_user_per_week_and_none_to_members(
    falcon_api: FalconApi, services: Services, clock: FrozenClock, falcon_mailbox: Mailbox
) -> None:
    owner, invitee, member = _user(falcon_api), _user(falcon_api), _user(falcon_api)
    add_member(owner, member, "viewer")
    sent_before = len(falcon_mailbox())
    for _ in range(3):
        invite(owner, invitee.email, "viewer")
    # Withdrawing and inviting again (or a declined invitation) sends nothing new either.
    for row in _rows(services, owner.organization_id):
        if row["user_id"] == invitee.user_id:
            assert owner.delete(f"{ORG_INVITATIONS}/{row['id']}").status == 204
    invite(owner, invitee.email, "viewer")
    invite(owner, member.email, "viewer")
    assert [m["to"] for m in falcon_mailbox()[sent_before:]] == [invitee.email]
    # The invitation is there all the same.
    assert len(invitee.get(INVITATIONS).json["items"]) == 1
    # A week later, a new invitation mails again.
    clock.advance(INVITATION_LIFETIME.total_seconds())
    _relogin(owner)
    invite(owner, invitee.email, "viewer")
    assert [m["to"] for m in falcon_mailbox()[sent_before:]] == [invitee.email] * 2


def test_accept_and_decline_refuse_clearly(
    falcon_api: FalconApi, services: Services, clock: FrozenClock
) -> None:
    owner, invitee, stranger = _user(falcon_api), _user(falcon_api), _user(falcon_api)
    org = owner.organization_id
    invite(owner, invitee.email, "viewer")
    pending = _only_invitation(services, org, invitee)
    # Someone else's, unknown and malformed ids: one 404, and nothing changes.
    for path in (
        f"{INVITATIONS}/{pending}/accept",
        f"{INVITATIONS}/{pending}/decline",
        f"{INVITATIONS}/{'0' * 8}-0000-4000-8000-{'0' * 12}/accept",
        f"{INVITATIONS}/not-a-uuid/decline",
    ):
        answer = stranger.post(path)
        assert (answer.status, answer.json["code"]) == (404, "not_found"), path
    assert invitee.post(f"{INVITATIONS}/{pending.upper()}/accept").status == 200
    again = invitee.post(f"{INVITATIONS}/{pending}/accept")
    assert (again.status, again.json["code"]) == (409, "invitation_accepted")
    late = invitee.post(f"{INVITATIONS}/{pending}/decline")
    assert (late.status, late.json["code"]) == (409, "invitation_accepted")

    # Declined: no membership, and it cannot be accepted afterwards.
    other = _user(falcon_api)
    invite(owner, other.email, "viewer")
    declined = _only_invitation(services, org, other)
    assert other.post(f"{INVITATIONS}/{declined}/decline").status == 204
    for verb in ("accept", "decline"):
        answer = other.post(f"{INVITATIONS}/{declined}/{verb}")
        assert (answer.status, answer.json["code"]) == (409, "invitation_declined")
    assert not _is_member(owner, other)
    assert owner.get(ORG_INVITATIONS).json["items"] == []

    # Expired after 7 days: gone from both lists, refused.
    late_user = _user(falcon_api)
    invite(owner, late_user.email, "viewer")
    expiring = _only_invitation(services, org, late_user)
    clock.advance(INVITATION_LIFETIME.total_seconds() - 1)
    _relogin(owner, late_user)
    assert len(late_user.get(INVITATIONS).json["items"]) == 1
    clock.advance(1)
    assert late_user.get(INVITATIONS).json["items"] == []
    assert owner.get(ORG_INVITATIONS).json["items"] == []
    answer = late_user.post(f"{INVITATIONS}/{expiring}/accept")
    assert (answer.status, answer.json["code"]) == (409, "invitation_expired")
    assert not _is_member(owner, late_user)


def test_a_live_member_cannot_accept_into_the_same_organization(
    falcon_api: FalconApi, services: Services
) -> None:
    owner, member = _user(falcon_api), _user(falcon_api)
    add_member(owner, member, "viewer")
    invite(owner, member.email, "admin")
    # Not offered to a member...
    assert member.get(INVITATIONS).json["items"] == []
    ids = [r["id"] for r in _rows(services, owner.organization_id) if r["accepted_at"] is None]
    # ...and refused if tried: the role does not change through an invitation.
    answer = member.post(f"{INVITATIONS}/{ids[0]}/accept")
    assert (answer.status, answer.json["code"]) == (409, "already_a_member")
    assert owner.get(f"{MEMBERS}/{member.user_id}").json["role"] == "viewer"


@pytest.mark.spec("RBAC-4")
def test_a_removed_member_comes_back_only_by_accepting(
    falcon_api: FalconApi, services: Services
) -> None:
    owner, member = _user(falcon_api), _user(falcon_api)
    add_member(owner, member, "accountant")
    assert owner.delete(f"{MEMBERS}/{member.user_id}").status == 204
    invite(owner, member.email, "viewer")
    assert not _is_member(owner, member)
    assert accept(member, owner.organization_id)["role"] == "viewer"
    m = db.memberships
    with services.db.transaction() as conn:
        rows = conn.execute(
            sa.select(m.c.role, m.c.deleted_at).where(
                m.c.user_id == member.user_id, m.c.organization_id == owner.organization_id
            )
        ).all()
    assert [(r.role, r.deleted_at) for r in rows] == [("viewer", None)]  # the row was revived


@pytest.mark.spec("RBAC-5")
def test_an_invitation_dies_with_its_inviters_authority(
    falcon_api: FalconApi, services: Services
) -> None:
    owner, admin, first, second = (_user(falcon_api) for _ in range(4))
    org = owner.organization_id
    add_member(owner, admin, "admin")
    invite(admin, first.email, "accountant", organization=org)
    invite(admin, second.email, "accountant", organization=org)
    # Demoted: an Accountant cannot grant an Accountant's member rights... nor anything.
    assert owner.patch(f"{MEMBERS}/{admin.user_id}", {"role": "viewer"}).status == 200
    void = first.post(f"{INVITATIONS}/{_only_invitation(services, org, first)}/accept")
    assert (void.status, void.json["code"]) == (409, "invitation_void")
    # Removed: the same.
    assert owner.delete(f"{MEMBERS}/{admin.user_id}").status == 204
    void = second.post(f"{INVITATIONS}/{_only_invitation(services, org, second)}/accept")
    assert (void.status, void.json["code"]) == (409, "invitation_void")
    assert not _is_member(owner, first)
    assert not _is_member(owner, second)


@pytest.mark.spec("RBAC-5")
def test_withdrawing(falcon_api: FalconApi, services: Services) -> None:
    owner, limited, viewer, invitee = (_user(falcon_api) for _ in range(4))
    org = owner.organization_id
    add_member(
        owner,
        limited,
        "admin",
        permissions=["member.view", "member.manage", "invoice.view", "company.view"],
    )
    add_member(owner, viewer, "viewer")
    invite(owner, invitee.email, "admin")
    pending = _only_invitation(services, org, invitee)
    target = f"{ORG_INVITATIONS}/{pending}"
    # Not by a Viewer (no member.manage), not by someone holding less than the grant.
    assert viewer.delete(target, organization=org).status == 403
    assert limited.delete(target, organization=org).status == 403
    # Not from another organization: 404 like an unknown id.
    assert invitee.delete(target).status == 404
    assert owner.delete(f"{ORG_INVITATIONS}/nope").status == 404
    assert owner.delete(target).status == 204
    assert owner.delete(target).status == 404
    gone = invitee.post(f"{INVITATIONS}/{pending}/accept")
    assert (gone.status, gone.json["code"]) == (404, "not_found")
    assert invitee.get(INVITATIONS).json["items"] == []
    assert owner.get(ORG_INVITATIONS).json["items"] == []
    reasons = {
        e.details["reason"]
        for e in services.audit.store.query(
            organization_id=org, types=[SecurityEventType.ACCESS_DENIED]
        )
    }
    # (The Viewer is refused by authorize_request before any membership rule runs.)
    assert reasons == {"grant_exceeds_actor"}


@pytest.mark.spec("KEY-5")
def test_an_api_key_neither_invites_nor_answers(falcon_api: FalconApi, services: Services) -> None:
    owner, invitee = _user(falcon_api), _user(falcon_api)
    org = owner.organization_id
    owner_key = services.api_keys.create(owner.user_id, org, name="a", scope="admin").key
    invitee_key = services.api_keys.create(
        invitee.user_id, invitee.organization_id, name="b", scope="admin"
    ).key
    refused = falcon_api.post(
        MEMBERS, {"email": invitee.email, "role": "viewer"}, api_key=owner_key
    )
    assert (refused.status, refused.json["code"]) == (403, "forbidden")
    assert _rows(services, org) == []
    invite(owner, invitee.email, "viewer")
    pending = _only_invitation(services, org, invitee)
    for answer in (
        falcon_api.get(INVITATIONS, api_key=invitee_key),
        falcon_api.post(f"{INVITATIONS}/{pending}/accept", api_key=invitee_key),
        falcon_api.post(f"{INVITATIONS}/{pending}/decline", api_key=invitee_key),
        falcon_api.delete(f"{ORG_INVITATIONS}/{pending}", api_key=owner_key),
    ):
        assert (answer.status, answer.json["code"]) == (403, "forbidden")
    # The owner's key may read the organization's list (member.view is in its scope).
    assert len(falcon_api.get(ORG_INVITATIONS, api_key=owner_key).json["items"]) == 1
    assert not _is_member(owner, invitee)


@pytest.mark.spec("RL-2")
def test_invitation_endpoints_spend_the_authenticated_bucket(falcon_api: FalconApi) -> None:
    owner, invitee = _user(falcon_api), _user(falcon_api)
    # Each user acts from an IP of its own: one bucket per IP, one token per request.
    for answers in (
        [
            owner.post(MEMBERS, {"email": invitee.email, "role": "viewer"}),
            owner.get(ORG_INVITATIONS),
        ],
        [invitee.get(INVITATIONS), invitee.post(f"{INVITATIONS}/{'0' * 36}/accept")],
    ):
        remaining = []
        for answer in answers:
            assert answer.header("RateLimit-Limit") is not None, answer.headers
            remaining.append(int(answer.header("RateLimit-Remaining") or "0"))
        assert remaining[0] > remaining[1], remaining


def test_lists_page_and_refuse_bad_cursors(falcon_api: FalconApi, services: Services) -> None:
    owner = _user(falcon_api)
    invitees = [_user(falcon_api) for _ in range(3)]
    for invitee in invitees:
        invite(owner, invitee.email, "viewer")
    first = owner.get(f"{ORG_INVITATIONS}?limit=2")
    assert len(first.json["items"]) == 2
    assert first.json["next_cursor"]
    rest = owner.get(f"{ORG_INVITATIONS}?limit=2&cursor={first.json['next_cursor']}")
    assert len(rest.json["items"]) == 1
    assert rest.json["next_cursor"] is None
    edge = base64.urlsafe_b64encode(
        b"9999-12-31T23:59:59-01:00|00000000-0000-4000-8000-000000000000"
    ).rstrip(b"=")
    for path in (ORG_INVITATIONS, INVITATIONS, "/api/v1/companies"):
        answer = owner.get(f"{path}?cursor={edge.decode()}")
        assert (answer.status, answer.json["field"]) == (400, "cursor"), path
    assert owner.get(f"{INVITATIONS}?limit=0").status == 400


def test_a_deleted_organization_offers_no_invitation(
    falcon_api: FalconApi, services: Services
) -> None:
    owner, invitee = _user(falcon_api), _user(falcon_api)
    invite(owner, invitee.email, "viewer")
    pending = _only_invitation(services, owner.organization_id, invitee)
    with services.db.transaction() as conn:
        conn.execute(
            db.organizations.update()
            .where(db.organizations.c.id == owner.organization_id)
            .values(deleted_at=services.clock.now() - timedelta(seconds=1))
        )
    assert invitee.get(INVITATIONS).json["items"] == []
    assert invitee.post(f"{INVITATIONS}/{pending}/accept").status == 404
