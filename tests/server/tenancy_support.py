"""Helpers for tests that need members: invite, then accept as the invited user (whose address
must be confirmed: ``register(confirm=True)``)."""

from __future__ import annotations

from typing import Any

from reference_server.wiring import Server
from storno_security.rbac.invitations import Invitation
from tests.server.api import Api, User

MEMBERS = "/api/v1/members"
INVITATIONS = "/api/v1/invitations"
ORG_INVITATIONS = f"{MEMBERS}/invitations"


def user(api: Api) -> User:
    """A fresh account with a confirmed address, registered from its own IP (registration is
    limited per IP)."""
    return api.with_ip().register(confirm=True)


def invite(inviter: User, email: str, role: str, **extra: Any) -> None:
    """``inviter`` invites ``email`` (in ``organization=`` or its default organization)."""
    organization = extra.pop("organization", None)
    response = inviter.post(
        MEMBERS, {"email": email, "role": role, **extra}, organization=organization
    )
    assert response.status == 202, response.json
    assert response.json == {"status": "invited"}


def invitation_id(member: User, organization_id: str) -> str:
    """The id of ``member``'s (newest) pending invitation to ``organization_id``."""
    listed = member.get(INVITATIONS)
    assert listed.status == 200, listed.json
    found = [i["id"] for i in listed.json["items"] if i["organization_id"] == organization_id]
    assert found, listed.json
    return str(found[-1])


def accept(member: User, organization_id: str) -> dict[str, Any]:
    """``member`` accepts its invitation to ``organization_id``; the new membership."""
    wanted = invitation_id(member, organization_id)
    response = member.post(f"{INVITATIONS}/{wanted}/accept")
    assert response.status == 200, response.json
    assert response.json["organization_id"] == organization_id
    data: dict[str, Any] = response.json["member"]
    return data


def add_member(inviter: User, member: User, role: str, **extra: Any) -> dict[str, Any]:
    """``member`` joins the inviter's organization (or ``organization=``) with ``role``."""
    organization = extra.get("organization") or inviter.organization_id
    invite(inviter, member.email, role, **extra)
    return accept(member, organization)


def invitations(server: Server, organization_id: str) -> list[Invitation]:
    """Every invitation the organization made, in every state, oldest first (white box)."""
    return server.kit.directory.invitations(organization_id=organization_id)


def only_invitation(server: Server, organization_id: str, email: str) -> str:
    """The id of the one invitation of the organization to ``email``."""
    ids = [i.invitation_id for i in invitations(server, organization_id) if i.email == email]
    assert len(ids) == 1, ids
    return ids[0]
