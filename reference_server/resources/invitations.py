"""Invitations (RBAC-5, RBAC-6, ACC-5): nobody becomes a member without accepting.

``POST /api/v1/members`` invites an *address*: the same ``202`` whatever the address (registered,
unknown, a member), and the mail goes after the answer. Only an account whose address is that
one and confirmed sees the invitation and may accept or decline it; to anyone else (an account
registered first for the address and not confirmed included) it answers exactly as an unknown
one, ``404``. Acceptance is decided again against the inviter's rights at that moment and
applied at most once. Every rule is the kit's; this module parses, calls, renders.
"""

from __future__ import annotations

from typing import Any

from reference_server.resources.members import (
    MEMBER,
    PERMISSIONS,
    ROLE,
    invalid_set,
    permission_set,
    stored_member_json,
)
from reference_server.schemas import (
    PAGE_PARAMETERS,
    page_json,
    page_of,
    page_request,
)
from reference_server.wiring import Server
from storno_security.errors import InvalidEmailError
from storno_security.integrations.falcon.errors import ApiError
from storno_security.integrations.falcon.openapi import obj
from storno_security.integrations.falcon.routing import Body, Ctx, Routes, iso
from storno_security.integrations.falcon.schemas import (
    EMAIL,
    NULLABLE_STRING,
    TIME,
)
from storno_security.rbac import Permission, is_visible
from storno_security.rbac.invitations import Invitation

__all__ = ["routes"]

routes = Routes()

_GRANT = {"role": ROLE, "permissions": {"type": ["array", "null"], "items": {"type": "string"}}}
_ORG_INVITATION = obj(
    {
        "id": {"type": "string"},
        "email": {"type": "string"},
        **_GRANT,
        "invited_by": NULLABLE_STRING,
        "created_at": TIME,
        "expires_at": TIME,
    },
    required=("id", "email", "role", "permissions", "invited_by", "created_at", "expires_at"),
)
_MY_INVITATION = obj(
    {
        "id": {"type": "string"},
        "organization_id": {"type": "string"},
        "organization_name": {"type": "string"},
        **_GRANT,
        "invited_by_name": NULLABLE_STRING,
        "created_at": TIME,
        "expires_at": TIME,
    },
    required=(
        "id",
        "organization_id",
        "organization_name",
        "role",
        "permissions",
        "invited_by_name",
        "created_at",
        "expires_at",
    ),
)
_ACCEPT_ERRORS = (
    "404 for an unknown or withdrawn invitation, someone else's, or one to an address the "
    "account has not confirmed; 409 `invitation_accepted`, `invitation_declined`, "
    "`invitation_expired`, `already_a_member`, `invitation_void` (the inviter can no longer "
    "grant it) or `conflict` (the organization changed meanwhile: try again)."
)


def _order(invitation: Invitation) -> tuple[Any, str]:
    return invitation.created_at, invitation.invitation_id


def _grant_json(invitation: Invitation) -> dict[str, Any]:
    custom = invitation.permissions
    return {
        "id": invitation.invitation_id,
        "role": invitation.role.value,
        "permissions": None if custom is None else sorted(p.value for p in custom),
        "created_at": iso(invitation.created_at),
        "expires_at": iso(invitation.expires_at),
    }


def _organization_json(invitation: Invitation) -> dict[str, Any]:
    # The address is the one the inviter typed; the list says nothing about its account.
    return {
        **_grant_json(invitation),
        "email": invitation.email,
        "invited_by": invitation.invited_by,
    }


@routes.post(
    "/api/v1/members",
    summary="Invite an address (member.manage, RBAC-5; never by an API key)",
    tag="tenancy",
    organization=True,
    description=(
        "Answers the same 202 whatever the address. The invitation (7 days) is bound to the "
        "address: only an account that has confirmed it sees and accepts it "
        "(`POST /api/v1/invitations/{id}/accept`). The role cannot be `owner`, and the "
        "invitation cannot grant more than the caller holds."
    ),
    body=obj(
        {"email": EMAIL, "role": ROLE, "permissions": PERMISSIONS},
        required=("email", "role"),
        additional=False,
    ),
    responses={202: obj({"status": {"const": "invited"}}, required=("status",))},
)
def invite(ctx: Ctx[Server], body: Body) -> None:
    auth = ctx.authorize(Permission.MEMBER_MANAGE)
    members = ctx.kit.stores.directory.members_of(auth.organization_id)
    seats = len(members) + len(ctx.kit.organization_invitations(auth))  # open ones hold a seat
    ctx.state.require_plan(auth.organization_id, users=seats)
    try:
        ctx.kit.invite(
            ctx.caller,
            body["email"],
            role=body["role"],
            permissions=permission_set(body),
            organization=ctx.header("X-Organization"),
        )
    except InvalidEmailError:  # the old API names the field
        raise ApiError(
            422, "invalid_email", "The email address is not valid.", extra={"field": "email"}
        ) from None
    except ValueError:
        invalid_set()
    ctx.json({"status": "invited"}, status=202)


@routes.get(
    "/api/v1/members/invitations",
    summary="List the organization's open invitations (member.view), with the invited address",
    tag="tenancy",
    organization=True,
    parameters=PAGE_PARAMETERS,
    responses={200: page_of(_ORG_INVITATION)},
)
def organization_invitations(ctx: Ctx[Server], body: Body) -> None:
    auth = ctx.authorize(Permission.MEMBER_VIEW)
    page = page_request(ctx).of(ctx.kit.organization_invitations(auth), _order)
    ctx.json(page_json(page, _organization_json))


@routes.delete(
    "/api/v1/members/invitations/{invitation_id}",
    summary="Withdraw an open invitation (member.manage; never by an API key)",
    tag="tenancy",
    organization=True,
    responses={204: None},
)
def withdraw(ctx: Ctx[Server], body: Body, invitation_id: str) -> None:
    ctx.kit.withdraw_invitation(
        ctx.caller, invitation_id, organization=ctx.header("X-Organization")
    )
    ctx.no_content()


@routes.get(
    "/api/v1/invitations",
    summary="List the open invitations to the caller's confirmed address (not an API key)",
    tag="tenancy",
    auth="user",
    parameters=PAGE_PARAMETERS,
    responses={200: page_of(_MY_INVITATION)},
)
def my_invitations(ctx: Ctx[Server], body: Body) -> None:
    request = page_request(ctx)
    directory = ctx.kit.directory
    # Not offered again where the caller is a member already (accepting would be refused).
    joined = {
        m.organization_id for m in directory.memberships_of(ctx.caller.user_id) if is_visible(m)
    }
    found = [i for i in ctx.kit.my_invitations(ctx.caller) if i.organization_id not in joined]
    page = request.of(found, _order)
    inviters = directory.get_users(i.invited_by for i in page.items if i.invited_by)

    def render(invitation: Invitation) -> dict[str, Any]:
        inviter = inviters.get(invitation.invited_by or "")
        organization = directory.get_organization(invitation.organization_id)
        return {
            **_grant_json(invitation),
            "organization_id": invitation.organization_id,
            "organization_name": "" if organization is None else organization.name,
            "invited_by_name": inviter.name if inviter is not None and inviter.is_live else None,
        }

    ctx.json(page_json(page, render))


@routes.post(
    "/api/v1/invitations/{invitation_id}/accept",
    summary="Accept an invitation to the caller's confirmed address (not an API key)",
    tag="tenancy",
    auth="user",
    description=_ACCEPT_ERRORS,
    responses={
        200: obj(
            {"organization_id": {"type": "string"}, "member": MEMBER},
            required=("organization_id", "member"),
        )
    },
)
def accept(ctx: Ctx[Server], body: Body, invitation_id: str) -> None:
    membership = ctx.kit.accept_invitation(ctx.caller, invitation_id)
    ctx.json(
        {
            "organization_id": membership.organization_id,
            "member": stored_member_json(ctx, membership),
        }
    )


@routes.post(
    "/api/v1/invitations/{invitation_id}/decline",
    summary="Decline an invitation to the caller's confirmed address (not an API key)",
    tag="tenancy",
    auth="user",
    responses={204: None},
)
def decline(ctx: Ctx[Server], body: Body, invitation_id: str) -> None:
    ctx.kit.decline_invitation(ctx.caller, invitation_id)
    ctx.no_content()
