"""The auth endpoints as a FastAPI router: each handler parses its body (a pydantic model, so
the endpoint is in the OpenAPI document), runs one kit flow in the offloader (the ``cpu`` lane
when it hashes a password) and answers with the reference server's JSON. Refresh tokens travel
in the JSON body.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from storno_security.integrations._common import (
    ApiError,
    api_key_json,
    created_api_key_json,
    encodable,
    iso,
    login_json,
    mfa_status_json,
    passkey_json,
    session_json,
    tokens_json,
    user_json,
)
from storno_security.kit import Caller
from storno_security.ratelimit import (
    FORGOT_PASSWORD,
    LOGIN,
    MFA_VERIFY,
    PASSKEY_LOGIN,
    PASSKEY_LOGIN_OPTIONS,
    REGISTER,
    RESET_PASSWORD,
)

if TYPE_CHECKING:
    from storno_security.integrations.fastapi import StornoFastAPI

__all__ = ["auth_router"]

_Password = Field(min_length=1, max_length=1024)
_Token = Field(min_length=1, max_length=512)
_Email = Field(min_length=3, max_length=320)
_Name = Field(default="", max_length=200)
_Code = Field(default=None, min_length=1, max_length=64)
_RESET_SENT = "If an account exists for this email, a reset link has been sent."
_CONFIRM_SENT = "If an unconfirmed account exists for this email, a new link has been sent."


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    @field_validator("*")
    @classmethod
    def _valid_unicode(cls, value: Any) -> Any:
        if not encodable(value):
            raise ValueError("a lone surrogate is not valid Unicode text")
        return value


class RegisterBody(_Body):
    email: str = _Email
    password: str = _Password
    name: str = _Name
    organization_name: str = _Name


class TokenBody(_Body):
    token: str = _Token


class EmailBody(_Body):
    email: str = _Email


class LoginBody(_Body):
    email: str = _Email
    password: str = _Password


class MfaVerifyBody(_Body):
    mfa_token: str = _Token
    method: Literal["totp", "backup_code", "passkey"]
    code: str | None = _Code
    credential: dict[str, Any] | None = None


class PasskeyOptionsBody(_Body):
    email: str | None = Field(default=None, min_length=3, max_length=320)


class CredentialBody(_Body):
    credential: dict[str, Any]


class RefreshBody(_Body):
    refresh_token: str = _Token


class ResetBody(_Body):
    token: str = _Token
    new_password: str = _Password


class ProofBody(_Body):
    """The proofs a sensitive act may ask for (ACC-6): send what ``accepted`` named."""

    current_password: str | None = Field(default=None, min_length=1, max_length=1024)
    step_up_token: str | None = Field(default=None, min_length=1, max_length=512)


class StepUpBody(_Body):
    action: str = Field(min_length=1, max_length=64)
    method: Literal["totp", "backup_code", "passkey"]
    code: str | None = _Code
    credential: dict[str, Any] | None = None


class CodeBody(_Body):
    code: str = Field(min_length=1, max_length=64)


class PasskeyRegistrationBody(_Body):
    credential: dict[str, Any]
    name: str = Field(min_length=1, max_length=200)


class ApiKeyBody(ProofBody):
    name: str = Field(min_length=1, max_length=200)
    scope: Literal["read", "write", "admin"]
    expires_at: datetime | None = None
    permissions: list[str] | None = Field(default=None, min_length=1, max_length=100)
    organization: str | None = Field(default=None, min_length=1, max_length=255)


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"


def _credential_id(text: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if not raw or len(text) > 1366:
        raise ApiError(404, "not_found", "Not found.")
    return raw


def auth_router(security: StornoFastAPI) -> APIRouter:
    """The router of the auth endpoints over ``security``'s kit."""
    kit = security.kit
    cpu = security.offload.cpu
    io = security.offload.io
    router = APIRouter(tags=["auth"], dependencies=[Depends(_no_store)])

    def limit(policy: str) -> Any:
        return Depends(security.rate_limit(policy))

    # --- sign-up and sign-in -----------------------------------------------------------------

    @router.post("/register", status_code=201, dependencies=[limit(REGISTER)])
    async def register(body: RegisterBody) -> dict[str, Any]:
        """Create an account, its organization and Owner membership; mail a confirmation
        link."""
        registration = await cpu(
            lambda: kit.register(
                body.email,
                body.password,
                name=body.name,
                organization_name=body.organization_name or None,
            )
        )
        extra = {"organization_id": registration.organization_id}
        if registration.session is None:
            return {"user": user_json(registration.user), **extra}
        return session_json(registration.session, **extra)

    @router.post("/confirm-email")
    async def confirm_email(body: TokenBody) -> dict[str, Any]:
        """Confirm the account's address with the token from the mail."""
        return {"user": user_json(await io(kit.confirm_email, body.token))}

    @router.post("/resend-confirmation", status_code=202, dependencies=[limit(FORGOT_PASSWORD)])
    async def resend_confirmation(body: EmailBody) -> dict[str, Any]:
        """Mail a new confirmation link (the same answer for every address)."""
        await io(kit.resend_confirmation, body.email)
        return {"message": _CONFIRM_SENT}

    @router.post("", dependencies=[limit(LOGIN)])
    async def login(body: LoginBody) -> dict[str, Any]:
        """Log in with email and password: a session, or an MFA challenge."""
        return login_json(await cpu(kit.login, body.email, body.password))

    @router.post("/mfa/verify", dependencies=[limit(MFA_VERIFY)])
    async def verify_mfa(body: MfaVerifyBody) -> dict[str, Any]:
        """Answer an MFA challenge with a TOTP code, a backup code or a passkey."""
        if body.method == "passkey" and body.credential is None:
            raise ApiError(
                400, "invalid_request", "'credential' is required.", extra={"field": "credential"}
            )
        if body.method != "passkey" and body.code is None:
            raise ApiError(400, "invalid_request", "'code' is required.", extra={"field": "code"})
        session = await io(
            lambda: kit.verify_mfa(
                body.mfa_token, method=body.method, code=body.code, credential=body.credential
            )
        )
        return session_json(session)

    @router.post("/passkey/login/options", dependencies=[limit(PASSKEY_LOGIN_OPTIONS)])
    async def passkey_login_options(body: PasskeyOptionsBody | None = None) -> dict[str, Any]:
        """Options for a passkey login (by email, or usernameless)."""
        options = await io(kit.passkey_login_options, body.email if body else None)
        return {"options": options.as_dict(), "expires_at": iso(options.expires_at)}

    @router.post("/passkey/login", dependencies=[limit(PASSKEY_LOGIN)])
    async def passkey_login(body: CredentialBody) -> dict[str, Any]:
        """Log in with a passkey (no second factor needed)."""
        return session_json(await io(kit.login_with_passkey, body.credential))

    @router.post("/refresh")
    async def refresh(body: RefreshBody) -> dict[str, Any]:
        """Rotate a refresh token; a reused one revokes its family."""
        return tokens_json(await io(kit.refresh, body.refresh_token))

    @router.post("/logout", status_code=204)
    async def logout(body: RefreshBody, caller: Caller = Depends(security.user)) -> Response:
        """Log out: revoke this login's refresh family and its access tokens."""
        await io(lambda: kit.logout(body.refresh_token, user_id=caller.user_id))
        return Response(status_code=204)

    @router.post("/logout-everywhere")
    async def logout_everywhere(caller: Caller = Depends(security.user)) -> dict[str, Any]:
        """End every session of the account."""
        return {"sessions_ended": await io(kit.logout_everywhere, caller.user_id)}

    @router.post("/forgot-password", status_code=202, dependencies=[limit(FORGOT_PASSWORD)])
    async def forgot_password(body: EmailBody) -> dict[str, Any]:
        """Ask for a password reset link (the same answer whether or not the email exists)."""
        await io(kit.request_password_reset, body.email)
        return {"message": _RESET_SENT}

    @router.post("/reset-password", dependencies=[limit(RESET_PASSWORD)])
    async def reset_password(body: ResetBody) -> dict[str, Any]:
        """Choose a new password with a reset token; every session is revoked."""
        await cpu(kit.reset_password, body.token, body.new_password)
        return {"message": "Your password has been changed. Please log in."}

    # --- the signed-in account ---------------------------------------------------------------

    @router.get("/me")
    async def me(caller: Caller = Depends(security.authenticated)) -> dict[str, Any]:
        """The account behind the credential (an API key: its user)."""
        return {"user": user_json(await io(kit.get_user, caller.user_id))}

    @router.post("/step-up")
    async def step_up(body: StepUpBody, caller: Caller = Depends(security.user)) -> dict[str, Any]:
        """Buy a single-use step-up token for one sensitive act with a fresh second factor."""
        grant = await io(
            lambda: kit.step_up(
                caller, body.action, method=body.method, code=body.code, credential=body.credential
            )
        )
        return {
            "step_up_token": grant.token,
            "action": grant.action,
            "expires_at": iso(grant.expires_at),
        }

    @router.get("/mfa")
    async def mfa_status(caller: Caller = Depends(security.user)) -> dict[str, Any]:
        """The account's second factors."""
        user = await io(kit.get_user, caller.user_id)
        return mfa_status_json(await io(kit.mfa_status, user))

    @router.post("/mfa/totp/setup")
    async def totp_setup(
        body: ProofBody, caller: Caller = Depends(security.user)
    ) -> dict[str, Any]:
        """Start TOTP enrolment (re-authenticated): the secret, shown once."""
        enrolment = await cpu(
            lambda: kit.begin_totp_enrolment(
                caller, step_up_token=body.step_up_token, current_password=body.current_password
            )
        )
        return {"secret": enrolment.secret, "otpauth_uri": enrolment.uri}

    @router.post("/mfa/totp/confirm")
    async def totp_confirm(
        body: CodeBody, caller: Caller = Depends(security.user)
    ) -> dict[str, Any]:
        """Confirm TOTP enrolment with a code: MFA is on; the backup codes, shown once."""
        codes = await io(kit.confirm_totp_enrolment, caller, body.code)
        return {"mfa_enabled": True, "backup_codes": list(codes.codes)}

    @router.post("/mfa/disable")
    async def mfa_disable(
        body: ProofBody, caller: Caller = Depends(security.user)
    ) -> dict[str, Any]:
        """Turn MFA off (a step-up token for ``mfa.disable``); a fresh session."""
        session = await io(lambda: kit.disable_mfa(caller, step_up_token=body.step_up_token))
        return session_json(session)

    # --- passkeys ----------------------------------------------------------------------------

    @router.post("/passkeys/register/options")
    async def passkey_register_options(
        body: ProofBody, caller: Caller = Depends(security.user)
    ) -> dict[str, Any]:
        """WebAuthn creation options for a new passkey (re-authenticated)."""
        options = await cpu(
            lambda: kit.begin_passkey_registration(
                caller, step_up_token=body.step_up_token, current_password=body.current_password
            )
        )
        return {"options": options.as_dict(), "expires_at": iso(options.expires_at)}

    @router.post("/passkeys/register", status_code=201)
    async def passkey_register(
        body: PasskeyRegistrationBody, caller: Caller = Depends(security.user)
    ) -> dict[str, Any]:
        """Register the passkey the authenticator made."""
        credential = await io(
            lambda: kit.finish_passkey_registration(caller, body.credential, name=body.name)
        )
        return passkey_json(credential)

    @router.get("/passkeys")
    async def passkeys(caller: Caller = Depends(security.user)) -> dict[str, Any]:
        """The account's passkeys."""
        return {"passkeys": [passkey_json(c) for c in await io(kit.list_passkeys, caller)]}

    @router.delete("/passkeys/{credential_id}", status_code=204)
    async def delete_passkey(
        credential_id: str, caller: Caller = Depends(security.user)
    ) -> Response:
        """Remove a passkey."""
        if not await io(kit.delete_passkey, caller, _credential_id(credential_id)):
            raise ApiError(404, "not_found", "Not found.")
        return Response(status_code=204)

    # --- API keys ----------------------------------------------------------------------------

    @router.post("/api-keys", status_code=201)
    async def create_api_key(
        body: ApiKeyBody, caller: Caller = Depends(security.user)
    ) -> dict[str, Any]:
        """Create an API key (re-authenticated); the key is shown once."""
        created = await cpu(
            lambda: kit.create_api_key(
                caller,
                name=body.name,
                scope=body.scope,
                expires_at=body.expires_at,
                permissions=body.permissions,
                organization=body.organization,
                step_up_token=body.step_up_token,
                current_password=body.current_password,
            )
        )
        return created_api_key_json(created)

    @router.get("/api-keys")
    async def list_api_keys(caller: Caller = Depends(security.user)) -> dict[str, Any]:
        """The API keys of the caller's organization (``apikey.manage``)."""
        return {"api_keys": [api_key_json(i) for i in await io(kit.list_api_keys, caller)]}

    @router.delete("/api-keys/{key_id}", status_code=204)
    async def revoke_api_key(key_id: str, caller: Caller = Depends(security.user)) -> Response:
        """Revoke an API key; it fails from the next request on."""
        if not await io(kit.revoke_api_key, caller, key_id):
            raise ApiError(404, "not_found", "Not found.")
        return Response(status_code=204)

    return router
