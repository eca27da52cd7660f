"""The caller's second factors: status, TOTP enrolment (MFA-1), backup codes (MFA-3), step-up
(MFA-6) and turning MFA off. Each handler calls one kit flow.

Enrolling TOTP and replacing backup codes are re-authenticated (ACC-6). A step-up token is
bought with a fresh second factor for exactly one act, and spent by it. Turning MFA off takes a
step-up, ends every session (REF-4) and answers with a fresh one. API keys never reach any of
this (KEY-5).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from storno_security.integrations.falcon.openapi import obj
from storno_security.integrations.falcon.routes._account import (
    MFA_STATUS,
    OPTIONS,
    mfa_status_json,
    options_json,
    proof,
    reauth_note,
    reauthenticated,
)
from storno_security.integrations.falcon.routing import Body, Ctx, Routes, iso
from storno_security.integrations.falcon.schemas import (
    CODE,
    COOKIE,
    CREDENTIAL,
    REAUTH_FIELDS,
    STEP_UP,
    TOKENS,
)
from storno_security.kit import SensitiveAction
from storno_security.ratelimit import LOGIN, MFA_VERIFY

__all__ = ["routes"]

routes = Routes()

_STR = {"type": "string"}
_CODES = {"type": "array", "items": _STR}
_METHODS = ["totp", "backup_code", "passkey"]


@routes.get(
    "/api/v1/mfa",
    summary="MFA status: enabled, methods, backup codes left",
    tag="mfa",
    auth="user",
    responses={200: MFA_STATUS},
)
def status(ctx: Ctx[Any], body: Body) -> None:
    ctx.json(mfa_status_json(ctx.kit.mfa_status(ctx.kit.get_user(ctx.caller.user_id))))


@routes.post(
    "/api/v1/mfa/totp/setup",
    summary="Start TOTP enrolment: the secret and otpauth URI, shown once (MFA-1)",
    tag="mfa",
    auth="user",
    limit=LOGIN,
    description=reauth_note(SensitiveAction.MFA_ENROL)
    + " 409 `mfa_already_enabled` when MFA is on.",
    body=obj(REAUTH_FIELDS),
    body_required=False,
    responses={
        200: obj(
            {"secret": _STR, "otpauth_uri": _STR, "issuer": _STR, "account_name": _STR},
            required=("secret", "otpauth_uri"),
        )
    },
)
@reauthenticated
def totp_setup(ctx: Ctx[Any], body: Body) -> None:
    enrolment = ctx.kit.begin_totp_enrolment(ctx.caller, **proof(body))
    # The label of an otpauth URI is "issuer:account", the issuer also a parameter.
    uri = urlsplit(enrolment.uri)
    label = unquote(uri.path.lstrip("/"))
    issuer = parse_qs(uri.query).get("issuer", [""])[0]
    ctx.json(
        {
            "secret": enrolment.secret,
            "otpauth_uri": enrolment.uri,
            "issuer": issuer,
            "account_name": label.split(":", 1)[-1],
        }
    )


@routes.post(
    "/api/v1/mfa/totp/confirm",
    summary="Confirm TOTP with one code: MFA on, 10 backup codes shown once (MFA-1, MFA-3)",
    tag="mfa",
    auth="user",
    body=obj({"code": CODE}, required=("code",)),
    responses={
        200: obj(
            {"enabled": {"const": True}, "backup_codes": _CODES},
            required=("enabled", "backup_codes"),
        )
    },
)
def totp_confirm(ctx: Ctx[Any], body: Body) -> None:
    codes = ctx.kit.confirm_totp_enrolment(ctx.caller, body["code"])
    ctx.json({"enabled": True, "backup_codes": list(codes.codes)})


@routes.post(
    "/api/v1/mfa/step-up",
    summary="Verify a fresh second factor for one sensitive action (MFA-6)",
    tag="mfa",
    auth="user",
    limit=MFA_VERIFY,
    description=(
        "The token is valid 120 seconds, once, for this user and `action` only. A passkey "
        "answer starts with `POST /api/v1/mfa/step-up/passkey-options`."
    ),
    body={
        **obj(
            {
                "action": {"enum": [a.value for a in SensitiveAction]},
                "method": {"enum": _METHODS},
                "code": CODE,
                "credential": CREDENTIAL,
            },
            required=("action", "method"),
        ),
        "if": {"properties": {"method": {"const": "passkey"}}},
        "then": {"required": ["credential"]},
        "else": {"required": ["code"]},
    },
    responses={
        200: obj(
            {
                "step_up_token": _STR,
                "action": _STR,
                "method": {"enum": _METHODS},
                "expires_at": {"type": "string", "format": "date-time"},
            },
            required=("step_up_token", "action", "method", "expires_at"),
        )
    },
)
def step_up(ctx: Ctx[Any], body: Body) -> None:
    grant = ctx.kit.step_up(
        ctx.caller,
        body["action"],
        method=body["method"],
        code=body.get("code"),
        credential=body.get("credential"),
    )
    ctx.json(
        {
            "step_up_token": grant.token,
            "action": grant.action,
            "method": grant.method,
            "expires_at": iso(grant.expires_at),
        }
    )


@routes.post(
    "/api/v1/mfa/step-up/passkey-options",
    summary="Options for a passkey step-up (the caller's passkeys)",
    tag="mfa",
    auth="user",
    responses={200: OPTIONS},
)
def step_up_passkey_options(ctx: Ctx[Any], body: Body) -> None:
    ctx.json(options_json(ctx.kit.step_up_passkey_options(ctx.caller)))


@routes.post(
    "/api/v1/mfa/backup-codes",
    summary="Replace the backup codes with a new set, shown once (re-authenticated)",
    tag="mfa",
    auth="user",
    description=reauth_note(SensitiveAction.BACKUP_CODES_REGENERATE)
    + " MFA is on here, so that is a step-up token; 409 `mfa_not_enabled` otherwise.",
    body=obj(REAUTH_FIELDS),
    responses={200: obj({"backup_codes": _CODES}, required=("backup_codes",))},
)
@reauthenticated
def backup_codes(ctx: Ctx[Any], body: Body) -> None:
    codes = ctx.kit.regenerate_backup_codes(ctx.caller, **proof(body))
    ctx.json({"backup_codes": list(codes.codes)})


@routes.post(
    "/api/v1/mfa/disable",
    summary="Turn MFA off (needs a step-up); every session ends, a new one is returned",
    tag="mfa",
    auth="user",
    description=(
        "Needs a `step_up_token` for `mfa.disable`: without one, 403 `step_up_required`. "
        "409 `mfa_not_enabled` when MFA is off."
    ),
    body=obj({"step_up_token": STEP_UP, "cookie": COOKIE}),
    responses={200: TOKENS},
)
def disable(ctx: Ctx[Any], body: Body) -> None:
    session = ctx.kit.disable_mfa(ctx.caller, step_up_token=body.get("step_up_token"))
    ctx.tokens(session.tokens, cookie=body.get("cookie", False))
