"""The caller's own account: who am I (``GET /api/v1/me``), the display name, the password, the
address and the Google link. Each handler calls one kit flow.

The caller's credentials are theirs, not an organization's: an access token of a live account
may change them whatever its memberships; an API key never may (KEY-5). Changing the password
or the address and linking Google are re-authenticated (ACC-6); a password change ends every
session (REF-4) and answers with a fresh one.
"""

from __future__ import annotations

import functools
from typing import Any

from storno_security.integrations.falcon.openapi import obj
from storno_security.integrations.falcon.routes._account import (
    MFA_STATUS,
    mfa_status_json,
    proof,
    reauth_note,
    reauthenticated,
)
from storno_security.integrations.falcon.routing import Body, Ctx, Routes, user_json
from storno_security.integrations.falcon.schemas import (
    COOKIE,
    EMAIL,
    NAME,
    PASSWORD,
    REAUTH_FIELDS,
    TOKENS,
    USER,
    string,
)
from storno_security.kit import Caller, CallerView, SensitiveAction
from storno_security.ratelimit import LOGIN
from storno_security.rbac import Permission, Role

__all__ = ["routes"]

routes = Routes()

_STR = {"type": "string"}
_ME = obj(
    {
        "user": USER,
        "organization": {
            **obj({"id": _STR, "name": _STR}, required=("id", "name")),
            "type": ["object", "null"],
        },
        "role": {"enum": [*(r.value for r in Role), None]},
        "permissions": {"type": "array", "items": _STR},
        "mfa": MFA_STATUS,
        "credential": obj(
            {"kind": {"enum": ["user", "api_key"]}, "key_id": _STR, "scope": _STR},
            required=("kind",),
        ),
    },
    required=("user", "organization", "role", "permissions", "mfa", "credential"),
)
_USER_ANSWER = obj({"user": USER}, required=("user",))


@functools.lru_cache(maxsize=256)
def _sorted_names(permissions: frozenset[Permission]) -> tuple[str, ...]:
    return tuple(sorted(p.value for p in permissions))


def _names(permissions: frozenset[Permission]) -> list[str]:
    """The sorted names (a role's set is one of a few: sorted once each)."""
    return list(_sorted_names(permissions))


@routes.get(
    "/api/v1/me",
    summary="The caller: user, organization, role, effective permissions, MFA status",
    tag="account",
    description=(
        "A user with no live membership gets `organization` and `role` null and no `permissions`."
    ),
    organization=True,
    overview=True,
    responses={200: _ME},
)
def me(ctx: Ctx[Any], body: Body) -> None:
    caller = ctx.caller
    view = ctx.kit.caller_view(caller, organization=ctx.header("X-Organization"))
    if caller.api_key is None:  # a user's answer is the view's alone: rendered once per view
        ctx.json_once(view, lambda: _answer(caller, view))
    else:
        ctx.json(_answer(caller, view))


def _answer(caller: Caller, view: CallerView) -> dict[str, Any]:
    credential: dict[str, Any] = {"kind": caller.kind}
    if caller.api_key is not None:
        credential["key_id"] = caller.api_key.key_id
        credential["scope"] = caller.api_key.scope.value
    answer: dict[str, Any] = {"organization": None, "role": None, "permissions": []}
    auth, found = view.authorization, view.organization
    if auth is not None and found is not None:
        answer = {
            "organization": {"id": found.organization_id, "name": found.name},
            "role": auth.role.value,
            "permissions": _names(auth.effective_permissions),
        }
    return {
        "user": user_json(view.user),
        **answer,
        "mfa": mfa_status_json(view.mfa),
        "credential": credential,
    }


@routes.patch(
    "/api/v1/me",
    summary="Change the caller's display name",
    tag="account",
    auth="user",
    body=obj({"name": NAME}, required=("name",)),
    responses={200: _USER_ANSWER},
)
def rename(ctx: Ctx[Any], body: Body) -> None:
    user = ctx.kit.update_profile(ctx.caller, name=body["name"].strip())
    ctx.json({"user": user_json(user)})


@routes.post(
    "/api/v1/me/password",
    summary="Change the password: every session ends, a new one is returned (REF-4)",
    tag="account",
    auth="user",
    limit=LOGIN,
    description=(
        "An account with a password sends `current_password` (a wrong one: 403 "
        "`invalid_credentials`); with MFA on, a `step_up_token` for "
        "`account.password_change` too. An account without a password sets its first one "
        "with the proof the re-authentication table asks for. Limited like a login."
    ),
    body=obj(
        {"new_password": PASSWORD, "cookie": COOKIE, **REAUTH_FIELDS}, required=("new_password",)
    ),
    responses={200: TOKENS},
)
@reauthenticated
def change_password(ctx: Ctx[Any], body: Body) -> None:
    session = ctx.kit.change_password(ctx.caller, new_password=body["new_password"], **proof(body))
    ctx.tokens(session.tokens, cookie=body.get("cookie", False), user=session.user)


@routes.post(
    "/api/v1/me/email",
    summary="Change the address; the new one is unconfirmed until its mailed link is used",
    tag="account",
    auth="user",
    limit=LOGIN,
    description=reauth_note(SensitiveAction.EMAIL_CHANGE)
    + " A recent login is not enough here. 409 `email_taken` when another account holds it.",
    body=obj({"email": EMAIL, **REAUTH_FIELDS}, required=("email",)),
    responses={200: _USER_ANSWER},
)
@reauthenticated
def change_email(ctx: Ctx[Any], body: Body) -> None:
    user = ctx.kit.change_email(ctx.caller, body["email"], **proof(body))
    ctx.json({"user": user_json(user)})


@routes.post(
    "/api/v1/me/google",
    summary="Link a Google account to the caller's account; needs re-authentication",
    tag="account",
    auth="user",
    limit=LOGIN,
    description=reauth_note(SensitiveAction.GOOGLE_LINK)
    + " 409 `google_account_taken` when the Google account is linked to another account, "
    "`google_already_linked` when the caller holds another Google account; 404 `not_enabled` "
    "without Google sign-in.",
    body=obj(
        {
            "id_token": string(8192, description="A Google ID token of the account to link."),
            **REAUTH_FIELDS,
        },
        required=("id_token",),
    ),
    responses={
        200: obj(
            {"user": USER, "google_linked": {"const": True}}, required=("user", "google_linked")
        )
    },
)
@reauthenticated
def link_google(ctx: Ctx[Any], body: Body) -> None:
    user = ctx.kit.link_google(ctx.caller, body["id_token"], **proof(body))
    ctx.json({"user": user_json(user), "google_linked": True})
