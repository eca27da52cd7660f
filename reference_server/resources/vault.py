"""Storage credentials of a company, sealed by the vault (VLT-1..3).

Permission ``vault.manage`` for every verb, the listing included: which providers a company
stores credentials for, under which names, is configuration only vault managers act on.
Sealing and opening are the kit's (:meth:`~storno_security.kit.Kit.seal_secret`,
:meth:`~storno_security.kit.Kit.open_secret`): both re-authenticate the user (ACC-6) and are
audited; API keys neither read nor write a secret (KEY-5).
"""

from __future__ import annotations

import json
from typing import Any

from reference_server.data.credentials import associated_data
from reference_server.data.tables import new_id
from reference_server.wiring import Server
from storno_security.integrations.falcon.errors import ApiError
from storno_security.integrations.falcon.openapi import obj
from storno_security.integrations.falcon.routes._account import proof, reauthenticated
from storno_security.integrations.falcon.routing import Body, Ctx, Routes, iso
from storno_security.integrations.falcon.schemas import REAUTH_FIELDS, TIME, string
from storno_security.rbac import Authorization, Permission, canonical_uuid

__all__ = ["MAX_SECRET_BYTES", "routes"]

routes = Routes()

#: The largest stored secret, as UTF-8 JSON.
MAX_SECRET_BYTES = 8 * 1024
_MAX_SECRET_FIELDS = 32
_STEP_UP_HEADER = "X-Step-Up-Token"
_PATH = "/api/v1/storage-credentials"
_ONE = _PATH + "/{credential_id}"

_SECRET = {
    "oneOf": [
        {"type": "string", "minLength": 1},
        {
            "type": "object",
            "minProperties": 1,
            "maxProperties": _MAX_SECRET_FIELDS,
            "propertyNames": {"minLength": 1, "maxLength": 100},
            "additionalProperties": {"type": "string"},
        },
    ],
    "description": f"A string, or an object of strings; at most {MAX_SECRET_BYTES} bytes as JSON.",
}
_ITEM = obj(
    {
        "id": {"type": "string", "format": "uuid"},
        "provider": {"type": "string"},
        "name": {"type": "string"},
        "created_at": TIME,
        "updated_at": TIME,
    },
    required=("id", "provider", "name", "created_at", "updated_at"),
)
_REVEALED = obj({**_ITEM["properties"], "secret": _SECRET}, required=(*_ITEM["required"], "secret"))
_STEP_UP_PARAM = {
    "name": _STEP_UP_HEADER,
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "A step-up token for vault.read (MFA-6): how an account with MFA proves it.",
}
_REAUTH = (
    "Re-authentication (ACC-6): with MFA on, `step_up_token` for `{act}`; else "
    "`current_password`; without a password, a login in the last 5 minutes. Without it "
    "`403 reauthentication_required` (or `step_up_required`) naming what is `accepted`."
)


def _item(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "provider": row["provider"],
        "name": row["name"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


def _secret_json(secret: object) -> str:
    """The secret as canonical JSON, within the size limit (413 beyond it)."""
    text = json.dumps(secret, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    if len(text.encode("utf-8")) > MAX_SECRET_BYTES:
        raise ApiError(
            413,
            "secret_too_large",
            f"The secret must be at most {MAX_SECRET_BYTES} bytes as JSON.",
            extra={"field": "secret"},
        )
    return text


def _company(ctx: Ctx[Server]) -> tuple[Authorization, str]:
    auth = ctx.authorize(Permission.VAULT_MANAGE, company=True)
    assert auth.company_id is not None  # company=True always resolves one
    return auth, auth.company_id


def _credential(ctx: Ctx[Server], company_id: str, credential_id: str) -> dict[str, Any]:
    """The live credential of this company; a malformed, unknown, deleted or another
    company's id answers alike (RBAC-3)."""
    found = ctx.state.data.credentials.get(company_id, canonical_uuid(credential_id) or "")
    if found is None:
        raise ApiError(404, "not_found", "Not found.")
    return found


def _label(provider: str) -> str:
    """The secret's name in the audit log: never the secret, never the user's label."""
    return f"storage_credential.{provider}"


@routes.get(
    _PATH,
    summary="List the company's storage credentials (never the secrets)",
    tag="vault",
    company=True,
    responses={200: obj({"items": {"type": "array", "items": _ITEM}}, required=("items",))},
)
def list_credentials(ctx: Ctx[Server], body: Body) -> None:
    _, company_id = _company(ctx)
    ctx.json({"items": [_item(row) for row in ctx.state.data.credentials.all(company_id)]})


@routes.post(
    _PATH,
    summary="Store a storage credential, sealed by the vault",
    description=_REAUTH.format(act="vault.write"),
    tag="vault",
    auth="user",
    company=True,
    body=obj(
        {
            "provider": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,31}$"},
            "name": string(200),
            "secret": _SECRET,
            **REAUTH_FIELDS,
        },
        required=("provider", "name", "secret"),
    ),
    responses={201: _ITEM},
)
@reauthenticated
def create_credential(ctx: Ctx[Server], body: Body) -> None:
    auth, company_id = _company(ctx)
    secret = _secret_json(body["secret"])
    credential_id = new_id()
    sealed = ctx.kit.seal_secret(
        ctx.caller,
        auth,
        secret,
        associated_data=associated_data(credential_id, company_id),
        secret_name=_label(body["provider"]),
        **proof(body),
    )
    values = {"provider": body["provider"], "name": body["name"], "sealed": sealed}
    row = ctx.state.data.credentials.add(
        company_id,
        credential_id,
        {**values, "created_by": ctx.caller.user_id},
        now=ctx.state.clock.now(),
    )
    ctx.json(_item(row), status=201)


@routes.put(
    _ONE,
    summary="Replace a storage credential's secret (and optionally its name)",
    description=_REAUTH.format(act="vault.write"),
    tag="vault",
    auth="user",
    company=True,
    body=obj(
        {"secret": _SECRET, "name": {**string(200), "type": ["string", "null"]}, **REAUTH_FIELDS},
        required=("secret",),
    ),
    responses={200: _ITEM},
)
@reauthenticated
def replace_credential(ctx: Ctx[Server], body: Body, credential_id: str) -> None:
    auth, company_id = _company(ctx)
    row = _credential(ctx, company_id, credential_id)
    sealed = ctx.kit.seal_secret(
        ctx.caller,
        auth,
        _secret_json(body["secret"]),
        associated_data=associated_data(row["id"], company_id),
        secret_name=_label(row["provider"]),
        **proof(body),
    )
    changes = (
        {"sealed": sealed} if body.get("name") is None else {"sealed": sealed, "name": body["name"]}
    )
    replaced = ctx.state.data.credentials.change(
        company_id, row["id"], changes, now=ctx.state.clock.now()
    )
    if replaced is None:  # deleted meanwhile
        raise ApiError(404, "not_found", "Not found.")
    ctx.json(_item(replaced))


@routes.delete(
    _ONE,
    summary="Delete a storage credential (soft delete; the sealed secret is wiped)",
    tag="vault",
    company=True,
    responses={204: None},
)
def delete_credential(ctx: Ctx[Server], body: Body, credential_id: str) -> None:
    _, company_id = _company(ctx)
    wanted = canonical_uuid(credential_id) or ""
    if not ctx.state.data.credentials.remove(company_id, wanted, now=ctx.state.clock.now()):
        raise ApiError(404, "not_found", "Not found.")
    ctx.no_content()


def _reveal(ctx: Ctx[Server], credential_id: str, **reauth: Any) -> None:
    auth, company_id = _company(ctx)
    row = _credential(ctx, company_id, credential_id)
    plain = ctx.kit.open_secret(
        ctx.caller,
        auth,
        row["sealed"],
        associated_data=associated_data(row["id"], company_id),
        secret_name=_label(row["provider"]),
        **reauth,
    )
    ctx.json({**_item(row), "secret": json.loads(plain.decode("utf-8"))})


@routes.get(
    _ONE + "/secret",
    summary="Reveal a storage credential's secret (a step-up token in a header)",
    description=(
        "For an account with MFA (a step-up token for `vault.read` in `X-Step-Up-Token`) or "
        "a login in the last 5 minutes; an account with a password and no MFA uses "
        "`POST` with `current_password`."
    ),
    tag="vault",
    auth="user",
    company=True,
    parameters=(_STEP_UP_PARAM,),
    responses={200: _REVEALED},
)
@reauthenticated
def reveal_secret(ctx: Ctx[Server], body: Body, credential_id: str) -> None:
    _reveal(ctx, credential_id, step_up_token=ctx.header(_STEP_UP_HEADER))


@routes.post(
    _ONE + "/secret",
    summary="Reveal a storage credential's secret (re-authenticated in the body)",
    description=_REAUTH.format(act="vault.read"),
    tag="vault",
    auth="user",
    company=True,
    body=obj(dict(REAUTH_FIELDS)),
    body_required=False,
    responses={200: _REVEALED},
)
@reauthenticated
def reveal_secret_reauthenticated(ctx: Ctx[Server], body: Body, credential_id: str) -> None:
    _reveal(ctx, credential_id, **proof(body))
