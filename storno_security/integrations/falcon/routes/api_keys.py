"""The caller's API keys in an organization (KEY-1..KEY-5): create (shown once, after
re-authentication, ACC-6), list (never a secret or hash), revoke. Each handler calls one kit
flow, which authorizes ``apikey.manage`` in the request's organization; an API key never
manages keys.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from storno_security.api_keys import ApiKeyInfo
from storno_security.integrations.falcon.errors import ApiError
from storno_security.integrations.falcon.openapi import obj
from storno_security.integrations.falcon.routes._account import proof, reauth_note, reauthenticated
from storno_security.integrations.falcon.routing import Body, Ctx, Routes, bad_request, iso
from storno_security.integrations.falcon.schemas import NAME, REAUTH_FIELDS, string
from storno_security.kit import SensitiveAction
from storno_security.ratelimit import LOGIN
from storno_security.rbac import parse_permissions

__all__ = ["routes"]

routes = Routes()

_MAX_YEAR: Final = 9000
_STR = {"type": "string"}
_NULL_TIME = {"type": ["string", "null"], "format": "date-time"}
_SCOPES = ["read", "write", "admin"]
_KEY_PROPS: dict[str, Any] = {
    "key_id": _STR,
    "name": _STR,
    "scope": {"enum": _SCOPES},
    "permissions": {"type": ["array", "null"], "items": _STR},
    "organization_id": _STR,
    "created_at": {"type": "string", "format": "date-time"},
    "expires_at": _NULL_TIME,
    "revoked_at": _NULL_TIME,
    "last_used_at": _NULL_TIME,
}
_KEY = obj(_KEY_PROPS, required=("key_id", "name", "scope", "created_at"))
_CREATED = obj(
    {"key": {"type": "string", "pattern": "^af_"}, **_KEY_PROPS},
    required=("key", "key_id", "name", "scope", "created_at"),
)


def _key_json(info: ApiKeyInfo) -> dict[str, Any]:
    return {
        "key_id": info.key_id,
        "name": info.name,
        "scope": info.scope.value,
        "permissions": None if info.permissions is None else list(info.permissions),
        "organization_id": info.organization_id,
        "created_at": iso(info.created_at),
        "expires_at": iso(info.expires_at),
        "revoked_at": iso(info.revoked_at),
        "last_used_at": iso(info.last_used_at),
    }


def _expires_at(text: str | None, now: datetime) -> datetime | None:
    """An RFC 3339 time with a zone (400 otherwise), in the future (422 otherwise)."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        bad_request("'expires_at' must be an RFC 3339 date-time.", field="expires_at")
    if value.tzinfo is None or value.utcoffset() is None:
        bad_request("'expires_at' must carry a time zone (e.g. Z).", field="expires_at")
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        bad_request("'expires_at' is out of range.", field="expires_at")
    if value.year > _MAX_YEAR:
        bad_request("'expires_at' is out of range.", field="expires_at")
    if value <= now:
        raise ApiError(
            422,
            "invalid_expiry",
            "'expires_at' must be in the future.",
            extra={"field": "expires_at"},
        )
    return value


def _permissions(names: list[str] | None) -> list[str] | None:
    if names is None:
        return None
    try:
        return sorted(p.value for p in parse_permissions(names))
    except ValueError:
        raise ApiError(
            422, "unknown_permission", "Unknown permission name.", extra={"field": "permissions"}
        ) from None


@routes.post(
    "/api/v1/api-keys",
    summary="Create an API key; the key is shown once (KEY-1..KEY-5)",
    tag="api-keys",
    auth="user",
    limit=LOGIN,
    organization=True,
    description=reauth_note(SensitiveAction.API_KEY_CREATE)
    + " An explicit `permissions` list must be a subset of the caller's (403 `forbidden`).",
    body=obj(
        {
            "name": NAME,
            "scope": {"enum": _SCOPES},
            "expires_at": string(64, format="date-time"),
            "permissions": {
                "type": "array",
                "items": string(64, description="A permission name, e.g. invoice.view."),
                "minItems": 1,
                "maxItems": 100,
            },
            **REAUTH_FIELDS,
        },
        required=("name", "scope"),
    ),
    responses={201: _CREATED},
)
@reauthenticated
def create(ctx: Ctx[Any], body: Body) -> None:
    expires_at = _expires_at(body.get("expires_at"), ctx.kit.clock.now())
    try:
        created = ctx.kit.create_api_key(
            ctx.caller,
            name=body["name"].strip(),
            scope=body["scope"],
            expires_at=expires_at,
            permissions=_permissions(body.get("permissions")),
            organization=ctx.header("X-Organization"),
            **proof(body),
        )
    except ValueError as exc:  # beyond the policy's longest lifetime
        raise ApiError(422, "invalid_api_key_request", str(exc)) from None
    ctx.json({"key": created.key, **_key_json(created.info)}, status=201)


@routes.get(
    "/api/v1/api-keys",
    summary="The caller's API keys in the organization (never a secret or hash)",
    tag="api-keys",
    auth="user",
    organization=True,
    responses={200: obj({"api_keys": {"type": "array", "items": _KEY}}, required=("api_keys",))},
)
def list_keys(ctx: Ctx[Any], body: Body) -> None:
    keys = ctx.kit.list_api_keys(ctx.caller, organization=ctx.header("X-Organization"))
    ctx.json({"api_keys": [_key_json(k) for k in keys]})


@routes.delete(
    "/api/v1/api-keys/{key_id}",
    summary="Revoke an API key: refused from the next request on (KEY-3)",
    tag="api-keys",
    auth="user",
    organization=True,
    responses={204: None},
)
def revoke(ctx: Ctx[Any], body: Body, key_id: str) -> None:
    if not ctx.kit.revoke_api_key(ctx.caller, key_id, organization=ctx.header("X-Organization")):
        raise ApiError(404, "not_found", "Not found.")
    ctx.no_content()
