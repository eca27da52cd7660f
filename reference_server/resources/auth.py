"""Authentication: register, login (password, MFA, Google, passkey), refresh, logout.

Every answer to a login attempt that fails for the credentials is the same 401
``invalid_credentials`` (ACC-1); an unknown email costs the same bcrypt work as a known one
(PW-4) because the hasher verifies against a dummy hash. MFA-enabled users get a challenge
instead of tokens (MFA-4). Refresh tokens travel in the JSON body, or, when the client asks
with ``"cookie": true``, in an HttpOnly, Secure, SameSite=Strict cookie scoped to ``/api/auth``
(SRV-4). The access token is never put in a cookie.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import falcon
import sqlalchemy as sa

from reference_server import users
from reference_server.context import Resource, audit_meta, require_interactive_user
from reference_server.errors import ApiError
from reference_server.http import Router, body_bool, body_text, read_json, required_text
from reference_server.openapi import obj, operation
from reference_server.reauth import start_session
from reference_server.services import Services
from storno_security.accounts import InvalidEmailError, normalise_email
from storno_security.audit import (
    Outcome,
    SecurityEventType,
    event_from_error,
    event_from_google_login,
    event_from_mfa_challenge,
    event_from_passkey_login,
    event_from_second_factor,
)
from storno_security.errors import (
    InvalidPasskeyError,
    InvalidPasswordError,
    MfaError,
)
from storno_security.mfa import PendingChallenge, VerifiedFactor
from storno_security.ratelimit import (
    GOOGLE_LOGIN,
    LOGIN,
    MFA_VERIFY,
    PASSKEY_LOGIN,
    PASSKEY_LOGIN_OPTIONS,
    REGISTER,
)
from storno_security.tokens import TokenPair

__all__ = ["OPENAPI_PATHS", "REFRESH_COOKIE", "register", "token_response"]

REFRESH_COOKIE = "storno_refresh"
_COOKIE_PATH = "/api/auth"


def token_response(
    req: falcon.Request,
    resp: falcon.Response,
    services: Services,
    pair: TokenPair,
    *,
    cookie: bool,
    user: sa.RowMapping | None = None,
) -> None:
    """Write a token pair: the refresh token in the body or in a cookie (SRV-4)."""
    body: dict[str, Any] = {
        "access_token": pair.access_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
        "refresh_expires_at": _iso(pair.refresh_expires_at),
    }
    if cookie:
        max_age = int((pair.refresh_expires_at - services.clock.now()).total_seconds())
        resp.set_cookie(
            REFRESH_COOKIE,
            pair.refresh_token,
            max_age=max(0, max_age),
            path=_COOKIE_PATH,
            secure=services.settings.cookie_secure,
            http_only=True,
            same_site="Strict",
        )
    else:
        body["refresh_token"] = pair.refresh_token
    if user is not None:
        body["user"] = users.user_json(user)
    resp.media = body


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _email_or_none(raw: str) -> str | None:
    try:
        return normalise_email(raw)
    except InvalidEmailError:
        return None


class _Base(Resource):
    def login_succeeded(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        user: sa.RowMapping,
        *,
        cookie: bool,
        method: str,
    ) -> None:
        pair = start_session(self.services, user["id"])
        self.services.audit.record(
            SecurityEventType.LOGIN_SUCCEEDED,
            actor_id=user["id"],
            subject_id=user["id"],
            organization_id=users.default_organization_id(self.services, user["id"]),
            details={"method": method, "session_id": pair.session_id},
            **audit_meta(req),
        )
        token_response(req, resp, self.services, pair, cookie=cookie, user=user)

    def challenge_or_tokens(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        user: sa.RowMapping,
        *,
        cookie: bool,
        method: str,
    ) -> None:
        """MFA-4: a challenge when MFA is on, else a session."""
        if not user["mfa_enabled"]:
            self.login_succeeded(req, resp, user, cookie=cookie, method=method)
            return
        has_passkey = self.services.passkeys.has_passkeys(user["id"])
        issued = self.services.challenges.issue(user["id"], has_passkey=has_passkey)
        body = dict(issued.response())
        if has_passkey:
            # MFA-5: the passkey ceremony's options come with the challenge, in one round trip.
            body["passkey_options"] = self.services.passkeys.start_login(user["id"]).as_dict()
        resp.media = body


class Register(_Base):
    """ACC-1: user + organization + Owner membership; answers with a session."""

    rate_limits: ClassVar[dict[str, str]] = {"POST": REGISTER}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self.body(req)
        raw_email = required_text(body, "email", max_length=320)
        password = required_text(body, "password", max_length=4096)
        name = body_text(body, "name", max_length=200, required=False) or ""
        organization = body_text(body, "organization_name", max_length=200, required=False)
        cookie = body_bool(body, "cookie")
        try:
            email = normalise_email(raw_email)
        except InvalidEmailError as exc:
            raise ApiError(422, "invalid_email", str(exc), extra={"field": "email"}) from None
        self.services.hasher.check_new_password(password)
        password_hash = self.services.hasher.hash(password)
        user_id, organization_id = users.create_account(
            self.services,
            email=email,
            name=name,
            password_hash=password_hash,
            organization_name=organization or (name or email.split("@", 1)[0]),
        )
        self.services.audit.record(
            SecurityEventType.REGISTERED,
            actor_id=user_id,
            subject_id=user_id,
            organization_id=organization_id,
            details={"method": "password"},
            **audit_meta(req),
        )
        user = users.get_user(self.services, user_id)
        assert user is not None
        pair = start_session(self.services, user_id)
        token_response(req, resp, self.services, pair, cookie=cookie, user=user)
        resp.media["organization_id"] = organization_id
        resp.status = falcon.HTTP_201


class Login(_Base):
    """Password login (PW-4, ACC-1, MFA-4)."""

    rate_limits: ClassVar[dict[str, str]] = {"POST": LOGIN}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self.body(req)
        raw_email = required_text(body, "email", max_length=320)
        password = required_text(body, "password", max_length=4096)
        cookie = body_bool(body, "cookie")
        email = _email_or_none(raw_email)
        user = users.find_user_by_email(self.services, email) if email else None
        stored = user["password_hash"] if user is not None else None
        try:
            # None (unknown user, or no password set) costs one dummy bcrypt: same time (PW-4).
            verified = self.services.hasher.verify(password, stored)
        except InvalidPasswordError as exc:
            self.services.audit.record_event(
                event_from_error(
                    SecurityEventType.LOGIN_FAILED,
                    exc,
                    at=self.services.clock.now(),
                    method="password",
                    actor_id=user["id"] if user is not None else None,
                    **audit_meta(req),
                )
            )
            raise
        assert user is not None
        assert stored is not None
        if verified.new_hash is not None:
            users.upgrade_password_hash(self.services, user["id"], stored, verified.new_hash)
        self.challenge_or_tokens(req, resp, user, cookie=cookie, method="password")


class MfaVerify(_Base):
    """MFA-4/MFA-5: answer a challenge with a TOTP code, a backup code or a passkey."""

    rate_limits: ClassVar[dict[str, str]] = {"POST": MFA_VERIFY}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self.body(req)
        token = required_text(body, "mfa_token", max_length=512)
        method = required_text(body, "method", max_length=32)
        cookie = body_bool(body, "cookie")
        if method not in ("totp", "backup_code", "passkey"):
            raise ApiError(
                400,
                "invalid_request",
                "'method' must be totp, backup_code or passkey.",
                extra={"field": "method"},
            )
        code = None
        credential = None
        if method == "passkey":
            credential = body.get("credential")
            if not isinstance(credential, dict):
                raise ApiError(
                    400,
                    "invalid_request",
                    "'credential' must be the WebAuthn assertion object.",
                    extra={"field": "credential"},
                )
        else:
            code = required_text(body, "code", max_length=64)
        services = self.services
        passkey_login: list[Any] = []

        def verify_factor(pending: PendingChallenge) -> VerifiedFactor:
            if method == "passkey":
                login = services.passkeys.verify_second_factor(
                    credential or {}, user_id=pending.user_id
                )
                passkey_login.append(login)
                return VerifiedFactor(
                    user_id=pending.user_id,
                    method="passkey",
                    verified_at=login.used_at,
                    totp_step=None,
                    backup_codes_left=None,
                )
            user = users.get_user(services, pending.user_id)
            secret = users.open_totp_secret(services, user) if user is not None else None
            assert code is not None
            return services.second_factor.verify(
                pending.user_id, method=method, code=code, totp_secret=secret
            )

        try:
            verified = services.challenges.complete(token, verify_factor)
        except (MfaError, InvalidPasskeyError) as exc:
            services.audit.record_event(
                event_from_error(
                    SecurityEventType.MFA_FAILED,
                    exc,
                    at=services.clock.now(),
                    method=method,
                    **audit_meta(req),
                )
            )
            raise
        meta = audit_meta(req)
        if passkey_login:
            services.audit.record_event(
                event_from_passkey_login(passkey_login[0], second_factor=True, **meta)
            )
        else:
            services.audit.record_event(event_from_mfa_challenge(verified, **meta))
            if method == "backup_code":
                services.audit.record_event(event_from_second_factor(verified.factor, **meta))
        user = users.get_user(services, verified.user_id)
        if user is None:
            raise ApiError(401, "invalid_mfa_token", "Invalid or expired MFA token.")
        self.login_succeeded(req, resp, user, cookie=cookie, method=f"mfa_{method}")
        if verified.factor.backup_codes_left is not None:
            resp.media["backup_codes_left"] = verified.factor.backup_codes_left


class GoogleLogin(_Base):
    """Sign in with a Google ID token: the linked account, or a new one.

    An account that already holds the Google account's email but is not linked to it is never
    adopted: registration does not prove the email, so that account may be a squatter's whose
    password would keep working (pre-account takeover). The answer is 409 ``account_exists``;
    the account's holder logs in and links Google with ``POST /api/v1/me/google``.
    """

    rate_limits: ClassVar[dict[str, str]] = {"POST": GOOGLE_LOGIN}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self.body(req)
        id_token = required_text(body, "id_token", max_length=8192)
        cookie = body_bool(body, "cookie")
        google = self.services.google
        if google is None:
            raise ApiError(404, "not_enabled", "Google sign-in is not configured.")
        identity = google.verify(id_token)
        user = users.find_by_google_subject(self.services, identity.subject)
        if user is None:
            email = _email_or_none(identity.email or "")
            if email is None:
                raise ApiError(422, "invalid_email", "The Google account has no usable email.")
            holder = users.find_user_by_email(self.services, email)
            if holder is not None:
                # The account's holder sees the attempt in their trail; nothing is linked.
                self.services.audit.record(
                    SecurityEventType.LOGIN_FAILED,
                    outcome=Outcome.FAILURE,
                    actor_id=holder["id"],
                    subject_id=holder["id"],
                    details={"method": "google", "reason": "account_exists"},
                    **audit_meta(req),
                )
                raise _account_exists()
            try:
                user_id, organization_id = users.create_account(
                    self.services,
                    email=email,
                    name=identity.name or "",
                    password_hash=None,
                    organization_name=identity.name or email.split("@", 1)[0],
                    google_subject=identity.subject,
                )
            except ApiError as exc:
                if exc.code != "email_taken":
                    raise
                # Registered (or linked) by a concurrent request meanwhile.
                raise _account_exists() from None
            self.services.audit.record(
                SecurityEventType.REGISTERED,
                actor_id=user_id,
                subject_id=user_id,
                organization_id=organization_id,
                details={"method": "google"},
                **audit_meta(req),
            )
            user = users.get_user(self.services, user_id)
        if user is None:
            raise ApiError(401, "invalid_id_token", "Google sign-in failed.")
        self.services.audit.record_event(
            event_from_google_login(
                identity, at=self.services.clock.now(), actor_id=user["id"], **audit_meta(req)
            )
        )
        self.challenge_or_tokens(req, resp, user, cookie=cookie, method="google")


def _account_exists() -> ApiError:
    return ApiError(
        409,
        "account_exists",
        "An account with this email exists: log in with it, then link Google in your account "
        "settings.",
    )


class PasskeyLoginOptions(_Base):
    """PK-4: options by email (allowCredentials) or usernameless (no email)."""

    rate_limits: ClassVar[dict[str, str]] = {"POST": PASSKEY_LOGIN_OPTIONS}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self.body(req) if req.content_length else {}
        raw_email = body_text(body, "email", max_length=320, required=False)
        user = None
        if raw_email is not None:
            email = _email_or_none(raw_email)
            user = users.find_user_by_email(self.services, email) if email else None
        # An unknown email gets usernameless options: the answer does not reveal the account.
        options = self.services.passkeys.start_login(user["id"] if user is not None else None)
        resp.media = {"options": options.as_dict(), "expires_at": _iso(options.expires_at)}


class PasskeyLogin(_Base):
    """A passkey login needs no second factor (MFA-5)."""

    rate_limits: ClassVar[dict[str, str]] = {"POST": PASSKEY_LOGIN}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self.body(req)
        credential = body.get("credential")
        cookie = body_bool(body, "cookie")
        if not isinstance(credential, dict):
            raise ApiError(
                400,
                "invalid_request",
                "'credential' must be the WebAuthn assertion object.",
                extra={"field": "credential"},
            )
        try:
            login = self.services.passkeys.finish_login(credential)
        except InvalidPasskeyError as exc:
            self.services.audit.record_event(
                event_from_error(
                    SecurityEventType.LOGIN_FAILED,
                    exc,
                    at=self.services.clock.now(),
                    method="passkey",
                    **audit_meta(req),
                )
            )
            raise
        user = users.get_user(self.services, login.user_id)
        if user is None:
            raise InvalidPasskeyError(reason="unknown_user")
        self.services.audit.record_event(event_from_passkey_login(login, **audit_meta(req)))
        pair = start_session(self.services, user["id"])
        token_response(req, resp, self.services, pair, cookie=cookie, user=user)


def _refresh_token_from(req: falcon.Request, body: dict[str, Any]) -> tuple[str, bool]:
    token = body_text(body, "refresh_token", max_length=512, required=False)
    if token is not None:
        return token, False
    cookies = req.get_cookie_values(REFRESH_COOKIE) or []
    if len(cookies) == 1 and cookies[0]:
        return cookies[0], True
    raise ApiError(
        400,
        "invalid_request",
        "'refresh_token' is required (in the body or the refresh cookie).",
        extra={"field": "refresh_token"},
    )


def _json_or_empty(req: falcon.Request, services: Services) -> dict[str, Any]:
    if not req.content_length:
        return {}
    return read_json(req, max_bytes=services.settings.max_body_bytes)


class Refresh(_Base):
    """REF-2/REF-3: rotate on every use; a reused token revokes its whole family."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = _json_or_empty(req, self.services)
        token, from_cookie = _refresh_token_from(req, body)
        pair = self.services.sessions.refresh(token)
        user = users.get_user(self.services, pair.user_id)
        if user is None:
            self.services.sessions.revoke_all(pair.user_id, reason="account_deleted")
            raise ApiError(401, "invalid_refresh_token", "Invalid refresh token.")
        token_response(
            req, resp, self.services, pair, cookie=from_cookie or body_bool(body, "cookie")
        )


class Logout(_Base):
    """REF-4: logout revokes the family (and its access tokens, at once)."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        caller = require_interactive_user(req)
        body = _json_or_empty(req, self.services)
        token, from_cookie = _refresh_token_from(req, body)
        self.services.sessions.logout(token, user_id=caller.user_id)
        if from_cookie:
            resp.unset_cookie(REFRESH_COOKIE, path=_COOKIE_PATH)
        resp.status = falcon.HTTP_204


_TOKENS = obj(
    {
        "access_token": {"type": "string"},
        "token_type": {"const": "Bearer"},
        "expires_in": {"type": "integer"},
        "refresh_token": {"type": "string"},
        "refresh_expires_at": {"type": "string", "format": "date-time"},
        "user": {"type": "object"},
        "organization_id": {"type": "string"},
        "backup_codes_left": {"type": "integer"},
    },
    required=("access_token", "token_type", "expires_in", "refresh_expires_at"),
)
_MFA_REQUIRED = obj(
    {
        "mfa_required": {"const": True},
        "mfa_token": {"type": "string"},
        "mfa_methods": {
            "type": "array",
            "items": {"enum": ["totp", "backup_code", "passkey"]},
        },
        "passkey_options": {"type": "object"},
    },
    required=("mfa_required", "mfa_token", "mfa_methods"),
)
_EMAIL = {"type": "string", "maxLength": 320}
_PASSWORD = {"type": "string", "maxLength": 4096}
_COOKIE = {"type": "boolean", "description": "Put the refresh token in an HttpOnly cookie."}
_CREDENTIAL = {"type": "object", "description": "The WebAuthn PublicKeyCredential as JSON."}

OPENAPI_PATHS: dict[str, Any] = {
    "/api/auth": {
        "post": operation(
            "Log in with email and password",
            tag="auth",
            auth="none",
            request=obj(
                {"email": _EMAIL, "password": _PASSWORD, "cookie": _COOKIE},
                required=("email", "password"),
            ),
            responses={200: {"oneOf": [_TOKENS, _MFA_REQUIRED]}},
        )
    },
    "/api/auth/register": {
        "post": operation(
            "Create an account, its organization and Owner membership",
            tag="auth",
            auth="none",
            request=obj(
                {
                    "email": _EMAIL,
                    "password": _PASSWORD,
                    "name": {"type": "string", "maxLength": 200},
                    "organization_name": {"type": "string", "maxLength": 200},
                    "cookie": _COOKIE,
                },
                required=("email", "password"),
            ),
            responses={201: _TOKENS},
        )
    },
    "/api/auth/mfa/verify": {
        "post": operation(
            "Answer an MFA challenge",
            tag="auth",
            auth="none",
            request=obj(
                {
                    "mfa_token": {"type": "string"},
                    "method": {"enum": ["totp", "backup_code", "passkey"]},
                    "code": {"type": "string"},
                    "credential": _CREDENTIAL,
                    "cookie": _COOKIE,
                },
                required=("mfa_token", "method"),
            ),
            responses={200: _TOKENS},
        )
    },
    "/api/auth/google": {
        "post": operation(
            "Sign in with a Google ID token",
            tag="auth",
            auth="none",
            request=obj(
                {"id_token": {"type": "string"}, "cookie": _COOKIE}, required=("id_token",)
            ),
            responses={200: {"oneOf": [_TOKENS, _MFA_REQUIRED]}},
        )
    },
    "/api/auth/passkey/login/options": {
        "post": operation(
            "Options for a passkey login (by email, or usernameless)",
            tag="auth",
            auth="none",
            request=obj({"email": _EMAIL}),
            responses={
                200: obj(
                    {"options": {"type": "object"}, "expires_at": {"type": "string"}},
                    required=("options", "expires_at"),
                )
            },
        )
    },
    "/api/auth/passkey/login": {
        "post": operation(
            "Log in with a passkey",
            tag="auth",
            auth="none",
            request=obj({"credential": _CREDENTIAL, "cookie": _COOKIE}, required=("credential",)),
            responses={200: _TOKENS},
        )
    },
    "/api/auth/refresh": {
        "post": operation(
            "Rotate a refresh token (from the body or the refresh cookie)",
            tag="auth",
            auth="none",
            request=obj({"refresh_token": {"type": "string"}, "cookie": _COOKIE}),
            responses={200: _TOKENS},
        )
    },
    "/api/auth/logout": {
        "post": operation(
            "Log out: revoke this login's refresh family and access tokens",
            tag="auth",
            auth="user",
            request=obj({"refresh_token": {"type": "string"}}),
            responses={204: None},
        )
    },
}


def register(app: Router, services: Services) -> None:
    app.add_route("/api/auth", Login(services))
    app.add_route("/api/auth/register", Register(services))
    app.add_route("/api/auth/mfa/verify", MfaVerify(services))
    app.add_route("/api/auth/google", GoogleLogin(services))
    app.add_route("/api/auth/passkey/login/options", PasskeyLoginOptions(services))
    app.add_route("/api/auth/passkey/login", PasskeyLogin(services))
    app.add_route("/api/auth/refresh", Refresh(services))
    app.add_route("/api/auth/logout", Logout(services))
