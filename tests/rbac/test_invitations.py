"""Organizations and invitations as pure records: their fields, the decision to invite and the
decision to accept (RBAC-6). The kit's invitation flows are tested in tests/kit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from storno_security.errors import (
    InvitationNotFoundError,
    InvitationVoidError,
)
from storno_security.rbac import (
    Invitation,
    Membership,
    Organization,
    Principal,
    Role,
    authorize_acceptance,
    authorize_invitation,
)
from storno_security.stores.memory import MemoryDirectoryStore

ORG = "org-1"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
ADDRESS = "invitee@example.eu"
ADMIN = Membership(user_id="admin", organization_id=ORG, role=Role.ADMIN)


def invitation(**fields: Any) -> Invitation:
    values: dict[str, Any] = {
        "invitation_id": "inv-1",
        "organization_id": ORG,
        "email": ADDRESS,
        "role": Role.ACCOUNTANT,
        "invited_by": "admin",
        "created_at": NOW,
        "expires_at": NOW + WEEK,
    }
    values.update(fields)
    return Invitation(**values)


def accept(found: Invitation | None, **overrides: Any) -> Membership:
    values: dict[str, Any] = {
        "user_id": "invitee",
        "email": ADDRESS,
        "email_confirmed": True,
        "inviter": ADMIN,
        "existing": (),
        "now": NOW,
    }
    values.update(overrides)
    return authorize_acceptance(found, **values)


def test_organization_and_invitation_fields_refuse_the_wrong_type() -> None:
    with pytest.raises(TypeError, match="organization_id must be a str, not int"):
        Organization(organization_id=7, name="Acme", created_at=NOW)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="organization_id must be 1 to 255 characters"):
        Organization(organization_id="", name="Acme", created_at=NOW)
    with pytest.raises(ValueError, match="without NUL"):
        Organization(organization_id="org\x00", name="Acme", created_at=NOW)
    with pytest.raises(TypeError, match="times must be datetimes"):
        Organization(organization_id=ORG, name="Acme", created_at="2026-03-01")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="times must be datetimes"):
        invitation(declined_at=NOW.timestamp())
    with pytest.raises(TypeError, match="permissions must be an iterable"):
        invitation(permissions="invoice.view")  # a str would be read letter by letter
    with pytest.raises(TypeError, match="permissions must be an iterable"):
        invitation(permissions=7)
    with pytest.raises(TypeError, match="invited_by must be a str"):
        invitation(invited_by=b"admin")
    assert invitation(permissions=["invoice.view"]).permissions == {"invoice.view"}


def test_the_decision_to_invite_refuses_bad_arguments() -> None:
    principal = Principal.user("admin", organization_id=ORG)
    arguments: dict[str, Any] = {
        "principal": principal,
        "organization_id": ORG,
        "email": ADDRESS,
        "role": Role.VIEWER,
        "permissions": None,
        "now": NOW,
        "lifetime": WEEK,
    }
    made = authorize_invitation(ADMIN, **arguments)
    assert (made.invited_by, made.expires_at) == ("admin", NOW + WEEK)
    with pytest.raises(TypeError, match="principal must be a Principal"):
        authorize_invitation(ADMIN, **{**arguments, "principal": "admin"})
    for lifetime in (timedelta(0), -WEEK):
        with pytest.raises(ValueError, match="lifetime must be positive"):
            authorize_invitation(ADMIN, **{**arguments, "lifetime": lifetime})
    with pytest.raises(TypeError, match="inviter must be a Membership or None"):
        authorize_invitation({"user_id": "admin", "role": "admin"}, **arguments)  # type: ignore[arg-type]
    # a bare permission name is not read letter by letter
    with pytest.raises(TypeError, match="iterable of permission names"):
        authorize_invitation(ADMIN, **{**arguments, "permissions": "invoice.view"})


@pytest.mark.spec("RBAC-6")
def test_an_unknown_invitation_or_another_address_is_not_found() -> None:
    with pytest.raises(InvitationNotFoundError) as info:
        accept(None)
    assert info.value.reason == "unknown"
    for overrides in (
        {"email_confirmed": False},
        {"email": None},
        {"email": "someone.else@example.eu"},
    ):
        with pytest.raises(InvitationNotFoundError) as info:
            accept(invitation(), **overrides)
        assert info.value.reason == "not_addressee"
        assert str(info.value) == "invitation not found"


@pytest.mark.spec("RBAC-6")
def test_an_invitation_whose_inviter_was_purged_is_void() -> None:
    with pytest.raises(InvitationVoidError) as info:
        accept(invitation(invited_by=None), inviter=None)
    assert info.value.reason == "inviter_gone"


@pytest.mark.spec("RBAC-6")
def test_an_invitation_beyond_what_the_inviter_holds_now_is_void() -> None:
    # invited as an Admin, the inviter now holds member.manage but not everything an
    # Accountant gets: the offer is worth only what the inviter could still grant
    narrowed = Membership(
        user_id="admin",
        organization_id=ORG,
        role=Role.ADMIN,
        permissions=["member.manage", "member.view", "org.view"],
    )
    with pytest.raises(InvitationVoidError) as info:
        accept(invitation(role=Role.ACCOUNTANT), inviter=narrowed)
    assert info.value.reason == "grant_exceeds_actor"
    granted = accept(invitation(role=Role.VIEWER, permissions=["org.view"]), inviter=narrowed)
    assert (granted.role, granted.permissions, granted.is_default) == (
        Role.VIEWER,
        {"org.view"},
        True,
    )


def test_a_directory_store_takes_memberships_only_as_a_sequence() -> None:
    store = MemoryDirectoryStore()
    one = Membership(user_id="u1", organization_id=ORG, role=Role.VIEWER)
    for bad in ("u1", b"u1", (m for m in [one]), {one}):
        with pytest.raises(TypeError, match="memberships must be a sequence of Membership"):
            store.apply_memberships(ORG, expected_version=0, memberships=bad, now=NOW)  # type: ignore[arg-type]
