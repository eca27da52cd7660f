"""The caller's passkeys: registration (PK-1, re-authenticated), list, rename, removal. Each
handler calls one kit flow.

A passkey logs in without a second factor (MFA-5) and outlives a password change, so adding one
needs re-authentication (ACC-6). The options call is the gate: the challenge it issues is bound
to the caller, and the register call accepts only a credential made for such a challenge.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Final

from storno_security._encoding import b64url_encode
from storno_security.integrations.falcon.errors import ApiError
from storno_security.integrations.falcon.openapi import obj
from storno_security.integrations.falcon.routes._account import (
    OPTIONS,
    options_json,
    proof,
    reauth_note,
    reauthenticated,
)
from storno_security.integrations.falcon.routing import Body, Ctx, Routes, iso
from storno_security.integrations.falcon.schemas import (
    CREDENTIAL,
    NAME_PATTERN,
    REAUTH_FIELDS,
    string,
)
from storno_security.kit import SensitiveAction
from storno_security.passkeys import PasskeyCredential
from storno_security.ratelimit import LOGIN

__all__ = ["routes"]

routes = Routes()

#: The library's default ``PasskeyPolicy.max_name_length``.
_NAME = string(64, pattern=NAME_PATTERN)
_B64URL: Final = re.compile(r"[A-Za-z0-9_-]{1,1366}")
_STR = {"type": "string"}
_NULL_TIME = {"type": ["string", "null"], "format": "date-time"}
_PASSKEY = obj(
    {
        "id": _STR,
        "name": _STR,
        "created_at": {"type": "string", "format": "date-time"},
        "last_used_at": _NULL_TIME,
        "transports": {"type": "array", "items": _STR},
        "aaguid": _STR,
        "backup_eligible": {"type": "boolean"},
        "backed_up": {"type": "boolean"},
        "flagged": {"type": "boolean"},
    },
    required=("id", "name", "created_at", "last_used_at", "transports", "flagged"),
)


def _passkey_json(credential: PasskeyCredential) -> dict[str, Any]:
    return {
        "id": b64url_encode(credential.credential_id),
        "name": credential.name,
        "created_at": iso(credential.created_at),
        "last_used_at": iso(credential.last_used_at),
        "transports": list(credential.transports),
        "aaguid": credential.aaguid,
        "backup_eligible": credential.backup_eligible,
        "backed_up": credential.backed_up,
        "flagged": credential.flagged_at is not None,
    }


def _not_found() -> ApiError:
    return ApiError(404, "not_found", "Not found.")


def _raw_id(text: str) -> bytes:
    """The credential id of a URL segment (base64url, no padding); 404 when malformed, as an
    unknown one."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise _not_found()
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):  # pragma: no cover - the pattern admits only valid text
        raise _not_found() from None


@routes.post(
    "/api/v1/passkeys/register/options",
    summary="Passkey registration options (PK-1); needs re-authentication",
    tag="passkeys",
    auth="user",
    limit=LOGIN,
    description=reauth_note(SensitiveAction.PASSKEY_REGISTER),
    body=obj(REAUTH_FIELDS),
    body_required=False,
    responses={200: OPTIONS},
)
@reauthenticated
def register_options(ctx: Ctx[Any], body: Body) -> None:
    ctx.json(options_json(ctx.kit.begin_passkey_registration(ctx.caller, **proof(body))))


@routes.post(
    "/api/v1/passkeys/register",
    summary="Register a passkey (for options from the re-authenticated options call)",
    tag="passkeys",
    auth="user",
    body=obj({"credential": CREDENTIAL, "name": _NAME}, required=("credential", "name")),
    responses={201: _PASSKEY},
)
def register(ctx: Ctx[Any], body: Body) -> None:
    created = ctx.kit.finish_passkey_registration(ctx.caller, body["credential"], name=body["name"])
    ctx.json(_passkey_json(created), status=201)


@routes.get(
    "/api/v1/passkeys",
    summary="The caller's passkeys",
    tag="passkeys",
    auth="user",
    responses={
        200: obj({"passkeys": {"type": "array", "items": _PASSKEY}}, required=("passkeys",))
    },
)
def list_passkeys(ctx: Ctx[Any], body: Body) -> None:
    ctx.json({"passkeys": [_passkey_json(c) for c in ctx.kit.list_passkeys(ctx.caller)]})


@routes.patch(
    "/api/v1/passkeys/{passkey_id}",
    summary="Rename a passkey",
    tag="passkeys",
    auth="user",
    body=obj({"name": _NAME}, required=("name",)),
    responses={200: _PASSKEY},
)
def rename(ctx: Ctx[Any], body: Body, passkey_id: str) -> None:
    raw = _raw_id(passkey_id)
    if not ctx.kit.rename_passkey(ctx.caller, raw, name=body["name"]):
        raise _not_found()
    found = next((c for c in ctx.kit.list_passkeys(ctx.caller) if c.credential_id == raw), None)
    if found is None:  # pragma: no cover - a delete racing the rename: removed before the read
        raise _not_found()
    ctx.json(_passkey_json(found))


@routes.delete(
    "/api/v1/passkeys/{passkey_id}",
    summary="Remove a passkey",
    tag="passkeys",
    auth="user",
    responses={204: None},
)
def delete(ctx: Ctx[Any], body: Body, passkey_id: str) -> None:
    if not ctx.kit.delete_passkey(ctx.caller, _raw_id(passkey_id)):
        raise _not_found()
    ctx.no_content()
