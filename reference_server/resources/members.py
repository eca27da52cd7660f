"""Members of the caller's organization (RBAC-2, RBAC-5, KEY-5): list, read, change the role or
permission set, remove (soft), hand the ownership over. Every change is a kit flow that decides
with the library's rules (no self-promotion, the Owner is neither changed nor removed, nobody
grants more than they hold, an API key never changes a membership), applies the change only if
the organization did not change meanwhile, and audits it; a refusal is audited as
``access.denied``. A removed member loses access on their next request (memberships are read on
every request).
"""

from __future__ import annotations

from typing import Any, NoReturn

from reference_server.wiring import Server
from storno_security.errors import MembershipNotFoundError
from storno_security.integrations.falcon.openapi import obj
from storno_security.integrations.falcon.routing import Body, Ctx, Routes, bad_request, iso
from storno_security.integrations.falcon.schemas import TIME, string
from storno_security.kit import MemberView
from storno_security.rbac import (
    Membership,
    Permission,
    Role,
    canonical_uuid,
    is_visible,
    parse_permissions,
)

__all__ = [
    "MEMBER",
    "PERMISSIONS",
    "ROLE",
    "invalid_set",
    "member_json",
    "permission_set",
    "routes",
    "stored_member_json",
]

routes = Routes()

ROLE = {"type": "string", "enum": [r.value for r in Role]}
#: Names are checked by :func:`permission_set` (so every fault names ``permissions`` itself).
PERMISSIONS = {
    "type": ["array", "null"],
    "maxItems": 2 * len(Permission),
    "description": "Permission names replacing the role's defaults (null: the role's "
    "defaults); never an Owner-only one: " + ", ".join(p.value for p in Permission),
}
MEMBER = obj(
    {
        "user_id": {"type": "string"},
        "email": {"type": ["string", "null"]},
        "name": {"type": "string"},
        "role": ROLE,
        "permissions": {"type": ["array", "null"], "items": {"type": "string"}},
        "effective_permissions": {"type": "array", "items": {"type": "string"}},
        "created_at": TIME,
    },
    required=(
        "user_id",
        "email",
        "name",
        "role",
        "permissions",
        "effective_permissions",
        "created_at",
    ),
)
_MEMBERS = obj({"items": {"type": "array", "items": MEMBER}}, required=("items",))
_CHANGE = obj({"role": ROLE, "permissions": PERMISSIONS}, additional=False)


def permission_set(body: Body) -> frozenset[Permission] | None:
    """``permissions`` of a body: a set of known names, or ``None`` (absent or null)."""
    value = body.get("permissions")
    if value is None:
        return None
    try:
        return parse_permissions(value)
    except (TypeError, ValueError):
        bad_request("'permissions' names an unknown permission.", field="permissions")


def invalid_set() -> NoReturn:
    """The kit refused a custom set the role cannot hold (an Owner-only permission)."""
    bad_request("This role cannot hold a custom set with these permissions.", field="permissions")


def member_json(view: MemberView) -> dict[str, Any]:
    member = view.membership
    custom = member.permissions
    return {
        "user_id": member.user_id,
        "email": view.email,
        "name": view.name,
        "role": member.role.value,
        "permissions": None if custom is None else sorted(p.value for p in custom),
        "effective_permissions": sorted(p.value for p in member.effective_permissions),
        "created_at": iso(view.joined_at),
    }


def stored_member_json(ctx: Ctx[Server], membership: Membership) -> dict[str, Any]:
    """A member a kit flow just wrote, as listed (for a caller who need not hold member.view)."""
    directory = ctx.kit.directory
    for record in directory.members_of(membership.organization_id):
        if record.membership.user_id == membership.user_id and is_visible(record.membership):
            user = directory.get_user(membership.user_id)
            return member_json(
                MemberView(
                    membership=record.membership,
                    email=None if user is None else user.email,
                    name="" if user is None else user.name,
                    joined_at=record.joined_at,
                )
            )
    raise MembershipNotFoundError(reason="changed_meanwhile")


def _user_id(raw: str) -> str:
    """A canonical id; anything else is passed on and matches no member (404)."""
    return canonical_uuid(raw) or raw


@routes.get(
    "/api/v1/members",
    summary="List the organization's members (member.view)",
    tag="tenancy",
    organization=True,
    responses={200: _MEMBERS},
)
def list_members(ctx: Ctx[Server], body: Body) -> None:
    auth = ctx.authorize(Permission.MEMBER_VIEW)
    ctx.json({"items": [member_json(v) for v in ctx.kit.list_members(auth)]})


@routes.get(
    "/api/v1/members/{user_id}",
    summary="Read a member (member.view)",
    tag="tenancy",
    organization=True,
    responses={200: MEMBER},
)
def get_member(ctx: Ctx[Server], body: Body, user_id: str) -> None:
    auth = ctx.authorize(Permission.MEMBER_VIEW)
    wanted = _user_id(user_id)
    found = [v for v in ctx.kit.list_members(auth) if v.membership.user_id == wanted]
    if not found:
        raise MembershipNotFoundError(reason="unknown")
    ctx.json(member_json(found[0]))


@routes.patch(
    "/api/v1/members/{user_id}",
    summary="Change a member's role or permissions (member.manage, RBAC-5)",
    tag="tenancy",
    organization=True,
    description=(
        "Sending `role` without `permissions` resets the member to the role's default "
        "permissions; sending only `permissions` keeps the role. Nobody raises their own "
        "permissions, and the Owner cannot be changed."
    ),
    body=_CHANGE,
    responses={200: MEMBER},
)
def update_member(ctx: Ctx[Server], body: Body, user_id: str) -> None:
    if not body:
        bad_request("Send 'role', 'permissions' or both.")
    try:
        changed = ctx.kit.update_member(
            ctx.caller,
            _user_id(user_id),
            role=body.get("role"),
            permissions=permission_set(body),
            organization=ctx.header("X-Organization"),
        )
    except ValueError:
        invalid_set()
    ctx.json(stored_member_json(ctx, changed))


@routes.delete(
    "/api/v1/members/{user_id}",
    summary="Remove a member (member.manage, RBAC-5): soft deletion; the Owner cannot be removed",
    tag="tenancy",
    organization=True,
    responses={204: None},
)
def remove_member(ctx: Ctx[Server], body: Body, user_id: str) -> None:
    ctx.kit.remove_member(ctx.caller, _user_id(user_id), organization=ctx.header("X-Organization"))
    ctx.no_content()


@routes.post(
    "/api/v1/members/transfer-ownership",
    summary="Make another member the Owner; the caller becomes an Admin (Owner only)",
    tag="tenancy",
    auth="user",
    organization=True,
    body=obj({"user_id": string(64)}, required=("user_id",), additional=False),
    responses={200: _MEMBERS},
)
def transfer_ownership(ctx: Ctx[Server], body: Body) -> None:
    auth = ctx.authorize(Permission.ORG_TRANSFER_OWNERSHIP)
    ctx.kit.transfer_ownership(
        ctx.caller, _user_id(body["user_id"]), organization=auth.organization_id
    )
    ctx.json({"items": [member_json(v) for v in ctx.kit.list_members(auth)]})
