"""Security review r-authz, findings 5, 6 and the tenancy part of 12: the proof-of-concept tests.

Each test failed on main before the fix (commit c98ef4b): adding a member needed no consent
(``404`` for an unknown email, ``201`` for a registered one; a stranger could be made the Owner
of an organization and then could not delete their account), and a tenancy ``?cursor=`` with a
time at the edge of the calendar answered 500.
"""

from __future__ import annotations

import base64

import pytest

from tests.server.api import FalconApi, fresh_email

MEMBERS = "/api/v1/members"


# Finding 5 (MEDIUM): POST /api/v1/members revealed whether an email is registered.
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
    # invitations shows two alike rows.
    members = {m["user_id"] for m in prober.get(MEMBERS).json["items"]}
    assert victim.user_id not in members
    pending = prober.get(f"{MEMBERS}/invitations")
    assert pending.status == 200, pending.json
    assert len(pending.json["items"]) == 2
    assert victim.email not in pending.body.decode()


# Finding 6 (MEDIUM): membership without consent made a stranger the Owner of the attacker's
# organization, which then blocked the victim's account deletion (409).
@pytest.mark.spec("RBAC-5")
@pytest.mark.spec("ACC-4")
def test_nobody_can_be_made_an_owner_without_consent(falcon_api: FalconApi) -> None:
    attacker = falcon_api.register()
    victim = falcon_api.with_ip().register()
    attacker.post(MEMBERS, {"email": victim.email, "role": "admin"})
    moved = attacker.post(f"{MEMBERS}/transfer-ownership", {"user_id": victim.user_id})
    assert moved.status == 404, moved.json  # an invited user is not a member
    deleted = victim.delete("/api/v1/me", {"current_password": victim.password})
    assert deleted.status == 202, deleted.json


# Finding 12, tenancy part (LOW): a cursor time whose UTC value does not exist answered 500.
@pytest.mark.parametrize("stamp", [b"0001-01-01T00:00:00+01:00", b"9999-12-31T23:59:59-01:00"])
@pytest.mark.parametrize("path", ["/api/v1/companies", "/api/v1/invoices"])
def test_out_of_range_cursor_times_are_a_400(
    falcon_api: FalconApi, stamp: bytes, path: str
) -> None:
    owner = falcon_api.register()
    company = owner.post("/api/v1/companies", {"name": "Acme", "country": "GB"}).json["id"]
    cursor = base64.urlsafe_b64encode(stamp + b"|00000000-0000-4000-8000-000000000000")
    response = owner.get(f"{path}?cursor={cursor.rstrip(b'=').decode()}", company=company)
    assert (response.status, response.json["code"]) == (400, "invalid_request"), response.json
