"""GDPR over HTTP (ACC-4): export my data, delete my account. Access tokens only (API keys
get 403). The work is :mod:`reference_server.gdpr`'s (the kit's flows and the server's rows).
"""

from __future__ import annotations

from typing import Any

from reference_server import gdpr
from reference_server.wiring import Server
from storno_security.audit import SecurityEventType
from storno_security.integrations.falcon.openapi import obj
from storno_security.integrations.falcon.routes._account import proof, reauthenticated
from storno_security.integrations.falcon.routing import Body, Ctx, Routes, iso
from storno_security.integrations.falcon.schemas import REAUTH_FIELDS
from storno_security.ratelimit import LOGIN

__all__ = ["routes"]

routes = Routes()


def _record_count(data: dict[str, Any]) -> int:
    return 1 + sum(len(value) for value in data.values() if isinstance(value, list))


@routes.get(
    "/api/v1/me/export",
    summary="Export all of my data (GDPR)",
    description=(
        "The account, MFA status, memberships, invitations received, API keys and passkeys "
        "(descriptions), the audit events I acted in, the organizations I own with their "
        "companies, and the invoices and storage credentials I created: their content only "
        "while I may still see them (`content_withheld` otherwise). Never a secret or a hash."
    ),
    tag="gdpr",
    auth="user",
    responses={
        200: obj(
            {"account": {"type": "object"}, "audit_events": {"type": "array"}},
            required=("account", "memberships", "audit_events", "invoices_created"),
        )
    },
)
def export_my_data(ctx: Ctx[Server], body: Body) -> None:
    caller = ctx.caller
    data = gdpr.export_user_data(ctx.state, caller)
    ctx.kit.emit(
        SecurityEventType.DATA_EXPORTED,
        actor_id=caller.user_id,
        subject_id=caller.user_id,
        details={"format": "json", "record_count": _record_count(data), "method": "gdpr"},
    )
    ctx.resp.set_header("Content-Disposition", 'attachment; filename="my-data.json"')
    ctx.json(data)


@routes.delete(
    "/api/v1/me",
    summary="Delete my account (GDPR): anonymised now, purged after the grace period",
    description=(
        "Re-authentication (ACC-6): with MFA on, `step_up_token` for `account.delete`; else "
        "`current_password`; without a password, a login in the last 5 minutes. Without it "
        "`403 reauthentication_required` with `accepted`; a wrong password "
        "`403 invalid_credentials`. Limited like a login. An Owner of an organization with "
        "other members gets `409 ownership_transfer_required` with `organization_ids`."
    ),
    tag="gdpr",
    auth="user",
    limit=LOGIN,
    body=obj(dict(REAUTH_FIELDS)),
    body_required=False,
    responses={
        202: obj(
            {
                "status": {"const": "deleted"},
                "purge_after": {"type": "string", "format": "date-time"},
            },
            required=("status", "purge_after"),
        )
    },
)
@reauthenticated
def delete_me(ctx: Ctx[Server], body: Body) -> None:
    deletion = gdpr.delete_account(ctx.state, ctx.caller, **proof(body))
    ctx.json({"status": "deleted", "purge_after": iso(deletion.purge_after)}, status=202)
