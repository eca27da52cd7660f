"""Sign-up and sign-in over HTTP: register, confirm the address, log in (password, MFA, Google,
passkey), refresh, log out, forgotten password. Every handler calls one kit flow.

Refresh tokens travel in the JSON body, or, when the client asks with ``"cookie": true``, in an
HttpOnly, Secure, SameSite=Strict cookie scoped to ``/api/auth`` (SRV-4), read only from JSON
requests. The access token is never put in a cookie.
"""

from __future__ import annotations

from typing import Any

from storno_security.integrations.falcon.openapi import obj
from storno_security.integrations.falcon.routing import (
    Body,
    Ctx,
    Routes,
    bad_request,
    iso,
    user_json,
)
from storno_security.integrations.falcon.schemas import (
    CODE,
    COOKIE,
    CREDENTIAL,
    EMAIL,
    MESSAGE,
    PASSWORD,
    TOKENS,
    USER,
    string,
)
from storno_security.ratelimit import (
    FORGOT_PASSWORD,
    GOOGLE_LOGIN,
    LOGIN,
    MFA_VERIFY,
    PASSKEY_LOGIN,
    PASSKEY_LOGIN_OPTIONS,
    REGISTER,
    RESET_PASSWORD,
)

__all__ = ["routes"]

routes = Routes()

_MFA_REQUIRED = obj(
    {
        "mfa_required": {"const": True},
        "mfa_token": {"type": "string"},
        "mfa_methods": {"type": "array", "items": {"enum": ["totp", "backup_code", "passkey"]}},
        "passkey_options": {"type": "object"},
    },
    required=("mfa_required", "mfa_token", "mfa_methods"),
)
_LOGIN_ANSWER = {"oneOf": [TOKENS, _MFA_REQUIRED]}
_OPTIONS = obj(
    {"options": {"type": "object"}, "expires_at": {"type": "string"}},
    required=("options", "expires_at"),
)
_TOKEN = string(512)
_RESET_SENT = "If an account exists for this email, a reset link has been sent."
_CONFIRM_SENT = "If an unconfirmed account exists for this email, a new link has been sent."


@routes.post(
    "/api/auth/register",
    summary="Create an account, its organization and Owner membership; mail a confirmation link",
    tag="auth",
    auth="none",
    limit=REGISTER,
    body=obj(
        {
            "email": EMAIL,
            "password": PASSWORD,
            "name": string(200, min_length=0),
            "organization_name": string(200, min_length=0),
            "cookie": COOKIE,
        },
        required=("email", "password"),
    ),
    responses={201: TOKENS},
)
def register(ctx: Ctx[Any], body: Body) -> None:
    registration = ctx.kit.register(
        body["email"],
        body["password"],
        name=body.get("name") or "",
        organization_name=body.get("organization_name") or None,
    )
    extra = {"organization_id": registration.organization_id}
    if registration.session is None:
        ctx.json({"user": user_json(registration.user), **extra}, status=201)
        return
    ctx.tokens(
        registration.session.tokens,
        cookie=body.get("cookie", False),
        user=registration.user,
        status=201,
        **extra,
    )


@routes.post(
    "/api/auth/confirm-email",
    summary="Confirm the account's address with the token from the mail (ACC-5)",
    tag="auth",
    auth="none",
    body=obj({"token": _TOKEN}, required=("token",)),
    responses={200: obj({"user": USER}, required=("user",))},
)
def confirm_email(ctx: Ctx[Any], body: Body) -> None:
    ctx.json({"user": user_json(ctx.kit.confirm_email(body["token"]))})


@routes.post(
    "/api/auth/resend-confirmation",
    summary="Mail a new confirmation link (the same answer for every address)",
    tag="auth",
    auth="none",
    limit=FORGOT_PASSWORD,
    body=obj({"email": EMAIL}, required=("email",)),
    responses={202: MESSAGE},
)
def resend_confirmation(ctx: Ctx[Any], body: Body) -> None:
    ctx.kit.resend_confirmation(body["email"])
    ctx.json({"message": _CONFIRM_SENT}, status=202)


@routes.post(
    "/api/auth",
    summary="Log in with email and password",
    tag="auth",
    auth="none",
    limit=LOGIN,
    body=obj(
        {"email": EMAIL, "password": PASSWORD, "cookie": COOKIE}, required=("email", "password")
    ),
    responses={200: _LOGIN_ANSWER},
)
def login(ctx: Ctx[Any], body: Body) -> None:
    ctx.login_answer(
        ctx.kit.login(body["email"], body["password"]), cookie=body.get("cookie", False)
    )


@routes.post(
    "/api/auth/mfa/verify",
    summary="Answer an MFA challenge with a TOTP code, a backup code or a passkey",
    tag="auth",
    auth="none",
    limit=MFA_VERIFY,
    body=obj(
        {
            "mfa_token": _TOKEN,
            "method": {"enum": ["totp", "backup_code", "passkey"]},
            "code": CODE,
            "credential": CREDENTIAL,
            "cookie": COOKIE,
        },
        required=("mfa_token", "method"),
    ),
    responses={200: TOKENS},
)
def verify_mfa(ctx: Ctx[Any], body: Body) -> None:
    method = body["method"]
    if method == "passkey" and "credential" not in body:
        bad_request("'credential' must be the WebAuthn assertion object.", field="credential")
    if method != "passkey" and "code" not in body:
        bad_request("'code' is required.", field="code")
    session = ctx.kit.verify_mfa(
        body["mfa_token"], method=method, code=body.get("code"), credential=body.get("credential")
    )
    ctx.login_answer(session, cookie=body.get("cookie", False))


@routes.post(
    "/api/auth/google",
    summary="Sign in with a Google ID token (never adopts an account by its address)",
    tag="auth",
    auth="none",
    limit=GOOGLE_LOGIN,
    body=obj({"id_token": string(8192), "cookie": COOKIE}, required=("id_token",)),
    responses={200: _LOGIN_ANSWER},
)
def google(ctx: Ctx[Any], body: Body) -> None:
    ctx.login_answer(ctx.kit.login_with_google(body["id_token"]), cookie=body.get("cookie", False))


@routes.post(
    "/api/auth/passkey/login/options",
    summary="Options for a passkey login (by email, or usernameless)",
    tag="auth",
    auth="none",
    limit=PASSKEY_LOGIN_OPTIONS,
    body=obj({"email": EMAIL}),
    body_required=False,
    responses={200: _OPTIONS},
)
def passkey_options(ctx: Ctx[Any], body: Body) -> None:
    options = ctx.kit.passkey_login_options(body.get("email"))
    ctx.json({"options": options.as_dict(), "expires_at": iso(options.expires_at)})


@routes.post(
    "/api/auth/passkey/login",
    summary="Log in with a passkey (no second factor needed)",
    tag="auth",
    auth="none",
    limit=PASSKEY_LOGIN,
    body=obj({"credential": CREDENTIAL, "cookie": COOKIE}, required=("credential",)),
    responses={200: TOKENS},
)
def passkey_login(ctx: Ctx[Any], body: Body) -> None:
    ctx.login_answer(
        ctx.kit.login_with_passkey(body["credential"]), cookie=body.get("cookie", False)
    )


@routes.post(
    "/api/auth/refresh",
    summary="Rotate a refresh token (from the JSON body or, in a JSON request, the cookie)",
    tag="auth",
    auth="none",
    body=obj({"refresh_token": _TOKEN, "cookie": COOKIE}),
    body_required=False,
    responses={200: TOKENS},
)
def refresh(ctx: Ctx[Any], body: Body) -> None:
    token, from_cookie = ctx.refresh_token(body)
    pair = ctx.kit.refresh(token)
    ctx.tokens(pair, cookie=from_cookie or body.get("cookie", False))


@routes.post(
    "/api/auth/logout",
    summary="Log out: revoke this login's refresh family and its access tokens",
    tag="auth",
    auth="user",
    body=obj({"refresh_token": _TOKEN}),
    body_required=False,
    responses={204: None},
)
def logout(ctx: Ctx[Any], body: Body) -> None:
    token, from_cookie = ctx.refresh_token(body)
    ctx.kit.logout(token, user_id=ctx.caller.user_id)
    if from_cookie:
        ctx.clear_refresh_cookie()
    ctx.no_content()


@routes.post(
    "/api/auth/forgot-password",
    summary="Ask for a password reset link (the same answer whether or not the email exists)",
    tag="auth",
    auth="none",
    limit=FORGOT_PASSWORD,
    body=obj({"email": EMAIL}, required=("email",)),
    responses={202: MESSAGE},
)
def forgot_password(ctx: Ctx[Any], body: Body) -> None:
    ctx.kit.request_password_reset(body["email"])
    ctx.json({"message": _RESET_SENT}, status=202)


@routes.post(
    "/api/auth/reset-password",
    summary="Choose a new password with a reset token; every session is revoked",
    tag="auth",
    auth="none",
    limit=RESET_PASSWORD,
    body=obj({"token": _TOKEN, "new_password": PASSWORD}, required=("token", "new_password")),
    responses={200: MESSAGE},
)
def reset_password(ctx: Ctx[Any], body: Body) -> None:
    ctx.kit.reset_password(body["token"], body["new_password"])
    ctx.json({"message": "Your password has been changed. Please log in."})
