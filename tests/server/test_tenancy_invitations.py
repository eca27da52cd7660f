"""Invitations (RBAC-5, RBAC-6, KEY-5, ACC-1, ACC-5): nobody becomes a member without accepting.

``POST /api/v1/members`` invites an address; only an account that has confirmed that address
sees, accepts or declines the invitation; the organization lists and withdraws its pending
invitations. Every answer of the inviting side is the same whatever the address, and a pending
invitation is never a membership.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from reference_server.wiring import Server
from storno_security.audit import SecurityEventType
from storno_security.clock import FrozenClock
from tests.server.api import Api, FalconApi, Response, User, fresh_email
from tests.server.tenancy_support import (
    INVITATIONS,
    MEMBERS,
    ORG_INVITATIONS,
    accept,
    add_member,
    invitation_id,
    invitations,
    invite,
    only_invitation,
    user,
)

Mailbox = Callable[[], list[dict[str, str]]]


def _invitation_mail(mailbox: Mailbox) -> list[dict[str, str]]:
    return [m for m in mailbox() if "invited to" in m["subject"]]


def _relogin(*users: User) -> None:
    """Fresh access tokens after the frozen clock moved past the old ones."""
    for one in users:
        response = one.api.post("/api/auth", {"email": one.email, "password": one.password})
        assert response.status == 200, response.json
        one.access_token = response.json["access_token"]


def _is_member(owner: User, one: User) -> bool:
    listed = owner.get(MEMBERS).json["items"]
    return one.user_id in {m["user_id"] for m in listed}


def _events(server: Server, organization_id: str, kind: SecurityEventType) -> list[Any]:
    return server.kit.audit.store.query(organization_id=organization_id, types=[kind])


def _error(response: Response) -> tuple[int, dict[str, Any]]:
    return response.status, {k: v for k, v in response.json.items() if k != "request_id"}


@pytest.mark.spec("RBAC-5")
def test_an_invitation_is_not_a_membership_until_accepted(
    falcon_api: FalconApi, server: Server, falcon_mailbox: Mailbox
) -> None:
    owner, invitee = user(falcon_api), user(falcon_api)
    org = owner.organization_id
    invite(owner, invitee.email, "accountant")
    (mail,) = [m for m in _invitation_mail(falcon_mailbox) if m["to"] == invitee.email]
    assert "Nothing changes unless you accept" in mail["body"]

    # Pending: not listed, not usable, not transferable-to.
    assert not _is_member(owner, invitee)
    assert invitee.get("/api/v1/companies", organization=org).status == 404
    transfer = owner.post(f"{MEMBERS}/transfer-ownership", {"user_id": invitee.user_id})
    assert (transfer.status, transfer.json["code"]) == (404, "not_found")
    assert _events(server, org, SecurityEventType.MEMBER_ADDED) == []

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
    # The kit audits the invitation as the inviter's act and the joining as the member's own
    # (an event whose subject is its actor names the actor only).
    (sent,) = _events(server, org, SecurityEventType.INVITATION_SENT)
    assert (sent.actor_id, sent.details["role"]) == (owner.user_id, "accountant")
    (event,) = _events(server, org, SecurityEventType.MEMBER_ADDED)
    assert (event.actor_id, event.subject_id, event.details["role"]) == (
        invitee.user_id,
        None,
        "accountant",
    )
    # Now a live member: the transfer is possible.
    moved = owner.post(f"{MEMBERS}/transfer-ownership", {"user_id": invitee.user_id})
    assert moved.status == 200, moved.json


@pytest.mark.spec("ACC-1")
def test_the_inviting_side_cannot_tell_a_registered_address(
    falcon_api: FalconApi, server: Server, falcon_mailbox: Mailbox
) -> None:
    owner, registered = user(falcon_api), user(falcon_api)
    nobody = fresh_email("nobody")
    answers = [
        owner.post(MEMBERS, {"email": email, "role": "viewer"})
        for email in (registered.email, nobody)
    ]
    assert [(a.status, a.json) for a in answers] == [(202, {"status": "invited"})] * 2
    assert answers[0].headers.keys() == answers[1].headers.keys()
    # The organization's list shows two alike pending invitations: the address the inviter
    # typed, never an account (invitations are bound to the address, RBAC-6).
    listed = owner.get(ORG_INVITATIONS)
    assert listed.status == 200
    items = listed.json["items"]
    assert {frozenset(i) for i in items} == {
        frozenset({"id", "email", "role", "permissions", "invited_by", "created_at", "expires_at"})
    }
    assert sorted(i["email"] for i in items) == sorted([registered.email, nobody])
    assert registered.user_id not in listed.body.decode()
    # Both addresses are stored and mailed alike: the mail does not tell either.
    stored = invitations(server, owner.organization_id)
    assert sorted(i.email for i in stored) == sorted([registered.email, nobody])
    mails = _invitation_mail(falcon_mailbox)
    assert [m["to"] for m in mails] == [registered.email, nobody]
    assert mails[0]["body"] == mails[1]["body"]


# Review r-authz, finding 5 (MEDIUM): POST /api/v1/members revealed whether an email is
# registered (404 for an unknown address, 201 for a registered one).
@pytest.mark.spec("ACC-1")
def test_adding_a_member_does_not_reveal_whether_an_email_is_registered(
    falcon_api: FalconApi,
) -> None:
    prober = falcon_api.register()
    victim = falcon_api.with_ip().register()
    unknown = prober.post(MEMBERS, {"email": fresh_email("nobody"), "role": "viewer"})
    known = prober.post(MEMBERS, {"email": victim.email, "role": "viewer"})
    assert (unknown.status, unknown.json) == (known.status, known.json)
    assert known.status == 202, known.json
    # Nor does the organization's side: the victim is not a member, and the list of pending
    # invitations shows two alike rows (each the address typed, no account).
    members = {m["user_id"] for m in prober.get(MEMBERS).json["items"]}
    assert victim.user_id not in members
    pending = prober.get(ORG_INVITATIONS)
    assert pending.status == 200, pending.json
    assert len(pending.json["items"]) == 2
    assert len({frozenset(i) for i in pending.json["items"]}) == 1
    assert victim.user_id not in pending.body.decode()


def test_one_mail_per_organization_and_address_per_week_and_none_to_members(
    falcon_api: FalconApi, server: Server, clock: FrozenClock, falcon_mailbox: Mailbox
) -> None:
    owner, invitee, member = user(falcon_api), user(falcon_api), user(falcon_api)
    add_member(owner, member, "viewer")
    sent_before = len(_invitation_mail(falcon_mailbox))
    for _ in range(3):
        invite(owner, invitee.email, "viewer")
    # Withdrawing and inviting again (or a declined invitation) sends nothing new either.
    for row in invitations(server, owner.organization_id):
        if row.email == invitee.email:
            assert owner.delete(f"{ORG_INVITATIONS}/{row.invitation_id}").status == 204
    invite(owner, invitee.email, "viewer")
    invite(owner, member.email, "viewer")
    assert [m["to"] for m in _invitation_mail(falcon_mailbox)[sent_before:]] == [invitee.email]
    # The invitation is there all the same.
    assert len(invitee.get(INVITATIONS).json["items"]) == 1
    # A week later, a new invitation mails again.
    clock.advance(server.kit.policy.invitation_mail_interval.total_seconds())
    _relogin(owner)
    invite(owner, invitee.email, "viewer")
    mails = _invitation_mail(falcon_mailbox)[sent_before:]
    assert [m["to"] for m in mails] == [invitee.email] * 2


def test_accept_and_decline_refuse_clearly(
    falcon_api: FalconApi, server: Server, clock: FrozenClock
) -> None:
    owner, invitee, stranger = user(falcon_api), user(falcon_api), user(falcon_api)
    org = owner.organization_id
    invite(owner, invitee.email, "viewer")
    pending = only_invitation(server, org, invitee.email)
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
    other = user(falcon_api)
    invite(owner, other.email, "viewer")
    declined = only_invitation(server, org, other.email)
    assert other.post(f"{INVITATIONS}/{declined}/decline").status == 204
    for verb in ("accept", "decline"):
        answer = other.post(f"{INVITATIONS}/{declined}/{verb}")
        assert (answer.status, answer.json["code"]) == (409, "invitation_declined")
    assert not _is_member(owner, other)
    assert owner.get(ORG_INVITATIONS).json["items"] == []

    # Expired after 7 days: gone from both lists, refused.
    late_user = user(falcon_api)
    invite(owner, late_user.email, "viewer")
    expiring = only_invitation(server, org, late_user.email)
    clock.advance(server.kit.policy.invitation_lifetime.total_seconds() - 1)
    _relogin(owner, late_user)
    assert len(late_user.get(INVITATIONS).json["items"]) == 1
    clock.advance(1)
    assert late_user.get(INVITATIONS).json["items"] == []
    assert owner.get(ORG_INVITATIONS).json["items"] == []
    answer = late_user.post(f"{INVITATIONS}/{expiring}/accept")
    assert (answer.status, answer.json["code"]) == (409, "invitation_expired")
    assert not _is_member(owner, late_user)


@pytest.mark.spec("RBAC-6")
@pytest.mark.spec("ACC-5")
def test_an_account_registered_first_for_the_address_cannot_take_the_invitation(
    api: Api,
) -> None:
    """Invitation squatting: whoever registers the invited address first gains nothing until
    the address is confirmed (the mailbox proven); until then the invitation answers exactly
    as an unknown one."""
    owner = api.register(confirm=True)
    address = fresh_email("invited")
    invite(owner, address, "accountant")
    (pending,) = [i["id"] for i in owner.get(ORG_INVITATIONS).json["items"]]
    squatter = api.with_ip().register(address)  # the address, not (yet) confirmed
    unknown = "00000000-0000-4000-8000-000000000000"

    assert squatter.get(INVITATIONS).json["items"] == []
    for verb in ("accept", "decline"):
        taken = squatter.post(f"{INVITATIONS}/{pending}/{verb}")
        assert _error(taken) == _error(squatter.post(f"{INVITATIONS}/{unknown}/{verb}"))
        assert (taken.status, taken.json["code"]) == (404, "not_found")
    assert not _is_member(owner, squatter)
    assert [i["id"] for i in owner.get(ORG_INVITATIONS).json["items"]] == [pending]

    # Proving the mailbox is what makes the invitation theirs.
    assert api.confirm_email(address).status == 200
    assert invitation_id(squatter, owner.organization_id) == pending
    assert accept(squatter, owner.organization_id)["role"] == "accountant"
    assert _is_member(owner, squatter)


@pytest.mark.spec("RBAC-6")
def test_an_invitation_is_accepted_at_most_once_under_concurrent_requests(api: Api) -> None:
    """Threads send the acceptance of two invitations to one account at once: one request
    wins, every other one is refused, and the account is a member once."""
    owner = api.register(confirm=True)
    invitee = api.with_ip().register(confirm=True)
    for role in ("viewer", "accountant"):
        invite(owner, invitee.email, role)
    ids = [i["id"] for i in invitee.get(INVITATIONS).json["items"]]
    assert len(ids) == 2, ids
    threads = 8
    start = threading.Barrier(threads)
    answers: list[Response] = []
    lock = threading.Lock()

    def attempt(n: int) -> None:
        start.wait()
        answer = invitee.post(f"{INVITATIONS}/{ids[n % 2]}/accept")
        with lock:
            answers.append(answer)

    workers = [threading.Thread(target=attempt, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert sorted(a.status for a in answers) == [200] + [409] * (threads - 1), [
        (a.status, a.json) for a in answers
    ]
    refused = {a.json["code"] for a in answers if a.status == 409}
    assert refused <= {"invitation_accepted", "already_a_member", "conflict"}, refused
    listed = [m["user_id"] for m in owner.get(MEMBERS).json["items"]]
    assert listed.count(invitee.user_id) == 1
    assert invitee.get(INVITATIONS).json["items"] == []


def test_a_live_member_cannot_accept_into_the_same_organization(
    falcon_api: FalconApi, server: Server
) -> None:
    owner, member = user(falcon_api), user(falcon_api)
    add_member(owner, member, "viewer")
    invite(owner, member.email, "admin")
    # Not offered to a member...
    assert member.get(INVITATIONS).json["items"] == []
    ids = [i.invitation_id for i in invitations(server, owner.organization_id) if not i.accepted_at]
    # ...and refused if tried: the role does not change through an invitation.
    answer = member.post(f"{INVITATIONS}/{ids[0]}/accept")
    assert (answer.status, answer.json["code"]) == (409, "already_a_member")
    assert owner.get(f"{MEMBERS}/{member.user_id}").json["role"] == "viewer"


@pytest.mark.spec("RBAC-4")
def test_a_removed_member_comes_back_only_by_accepting(
    falcon_api: FalconApi, server: Server
) -> None:
    owner, member = user(falcon_api), user(falcon_api)
    add_member(owner, member, "accountant")
    assert owner.delete(f"{MEMBERS}/{member.user_id}").status == 204
    invite(owner, member.email, "viewer")
    assert not _is_member(owner, member)
    assert accept(member, owner.organization_id)["role"] == "viewer"
    records = [
        r.membership
        for r in server.kit.directory.members_of(owner.organization_id)
        if r.membership.user_id == member.user_id
    ]
    # The record was revived: one per user and organization.
    assert [(m.role.value, m.deleted_at) for m in records] == [("viewer", None)]


@pytest.mark.spec("RBAC-5")
def test_an_invitation_dies_with_its_inviters_authority(
    falcon_api: FalconApi, server: Server
) -> None:
    owner, admin, first, second = (user(falcon_api) for _ in range(4))
    org = owner.organization_id
    add_member(owner, admin, "admin")
    invite(admin, first.email, "accountant", organization=org)
    invite(admin, second.email, "accountant", organization=org)
    # Demoted: a Viewer cannot grant an Accountant's rights... nor anything.
    assert owner.patch(f"{MEMBERS}/{admin.user_id}", {"role": "viewer"}).status == 200
    void = first.post(f"{INVITATIONS}/{only_invitation(server, org, first.email)}/accept")
    assert (void.status, void.json["code"]) == (409, "invitation_void")
    # Removed: the same.
    assert owner.delete(f"{MEMBERS}/{admin.user_id}").status == 204
    void = second.post(f"{INVITATIONS}/{only_invitation(server, org, second.email)}/accept")
    assert (void.status, void.json["code"]) == (409, "invitation_void")
    assert not _is_member(owner, first)
    assert not _is_member(owner, second)


@pytest.mark.spec("RBAC-5")
def test_withdrawing(falcon_api: FalconApi, server: Server) -> None:
    owner, limited, viewer, invitee = (user(falcon_api) for _ in range(4))
    org = owner.organization_id
    add_member(
        owner,
        limited,
        "admin",
        permissions=["member.view", "member.manage", "invoice.view", "company.view"],
    )
    add_member(owner, viewer, "viewer")
    invite(owner, invitee.email, "admin")
    pending = only_invitation(server, org, invitee.email)
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
    reasons = {e.details["reason"] for e in _events(server, org, SecurityEventType.ACCESS_DENIED)}
    # (The Viewer is refused by the access decision before any membership rule runs.)
    assert reasons == {"grant_exceeds_actor"}


@pytest.mark.spec("KEY-5")
def test_an_api_key_neither_invites_nor_answers(falcon_api: FalconApi, server: Server) -> None:
    owner, invitee = user(falcon_api), user(falcon_api)
    org = owner.organization_id
    keys = server.kit.api_keys
    owner_key = keys.create(owner.user_id, org, name="a", scope="admin").key
    invitee_key = keys.create(invitee.user_id, invitee.organization_id, name="b", scope="admin").key
    refused = falcon_api.post(
        MEMBERS, {"email": invitee.email, "role": "viewer"}, api_key=owner_key
    )
    assert (refused.status, refused.json["code"]) == (403, "forbidden")
    assert invitations(server, org) == []
    invite(owner, invitee.email, "viewer")
    pending = only_invitation(server, org, invitee.email)
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
    owner, invitee = user(falcon_api), user(falcon_api)
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


def test_lists_page_and_refuse_bad_cursors(falcon_api: FalconApi) -> None:
    owner = user(falcon_api)
    for invitee in [user(falcon_api) for _ in range(3)]:
        invite(owner, invitee.email, "viewer")
    first = owner.get(f"{ORG_INVITATIONS}?limit=2")
    assert len(first.json["items"]) == 2
    assert first.json["next_cursor"]
    rest = owner.get(f"{ORG_INVITATIONS}?limit=2&cursor={first.json['next_cursor']}")
    assert len(rest.json["items"]) == 1
    assert rest.json["next_cursor"] is None
    assert {i["id"] for i in first.json["items"] + rest.json["items"]} == {
        i["id"] for i in owner.get(ORG_INVITATIONS).json["items"]
    }
    edge = base64.urlsafe_b64encode(
        b"9999-12-31T23:59:59-01:00|00000000-0000-4000-8000-000000000000"
    ).rstrip(b"=")
    for path in (ORG_INVITATIONS, INVITATIONS, "/api/v1/companies"):
        answer = owner.get(f"{path}?cursor={edge.decode()}")
        assert (answer.status, answer.json["field"]) == (400, "cursor"), path
    assert owner.get(f"{INVITATIONS}?limit=0").status == 400


def test_a_deleted_organization_offers_no_invitation(falcon_api: FalconApi, server: Server) -> None:
    owner, invitee = user(falcon_api), user(falcon_api)
    invite(owner, invitee.email, "viewer")
    pending = only_invitation(server, owner.organization_id, invitee.email)
    directory = server.kit.directory
    organization = directory.get_organization(owner.organization_id)
    assert organization is not None
    assert directory.update_organization(
        owner.organization_id,
        expected_version=organization.version,
        deleted_at=server.clock.now() - timedelta(seconds=1),
    )
    assert invitee.get(INVITATIONS).json["items"] == []
    assert invitee.post(f"{INVITATIONS}/{pending}/accept").status == 404
