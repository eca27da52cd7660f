"""Forgot and reset password (ACC-2).

``forgot-password`` answers the same 202 whether or not the email exists, and does the
account-dependent work (issue a token, send the mail) off the request thread, so neither the
body nor the time of the answer tells whether an account exists. Reset tokens are single use,
stored only as SHA-256, and expire after an hour (the library's
:class:`~storno_security.accounts.PasswordResetTokens`). A reset kills every session (REF-4)
and every other reset token of the user; it does not log the user in, so a reset can never
step around MFA.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

import falcon

from reference_server import users
from reference_server.context import Resource, audit_meta
from reference_server.errors import ApiError
from reference_server.http import Router, required_text
from reference_server.openapi import obj, operation
from reference_server.services import Services
from storno_security.accounts import InvalidEmailError, InvalidResetTokenError, normalise_email
from storno_security.audit import SecurityEventType
from storno_security.ratelimit import FORGOT_PASSWORD, RESET_PASSWORD

__all__ = ["OPENAPI_PATHS", "register"]

_ACCEPTED = "If an account exists for this email, a reset link has been sent."


class ForgotPassword(Resource):
    rate_limits: ClassVar[dict[str, str]] = {"POST": FORGOT_PASSWORD}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self.body(req)
        raw = required_text(body, "email", max_length=320)
        try:
            email: str | None = normalise_email(raw)
        except InvalidEmailError:
            email = None
        meta = audit_meta(req)
        if email is not None:
            self.services.run_later(lambda: self._send(email, meta))
        resp.status = falcon.HTTP_202
        resp.media = {"message": _ACCEPTED}

    def _send(self, email: str, meta: dict[str, Any]) -> None:
        user = users.find_user_by_email(self.services, email)
        if user is None or user["email"] is None:
            return
        issued = self.services.reset_tokens.issue(user["id"])
        link = (
            f"{self.services.settings.public_url.rstrip('/')}/reset-password"
            f"?token={quote(issued.token)}"
        )
        self.services.email.send(
            to=user["email"],
            subject="Reset your password",
            body=(
                "Someone asked to reset the password of your account.\n"
                f"Open this link within an hour to choose a new one:\n{link}\n"
                "If it was not you, ignore this mail; your password stays as it is.\n"
            ),
        )
        self.services.audit.record(
            SecurityEventType.PASSWORD_RESET_REQUESTED,
            actor_id=user["id"],
            subject_id=user["id"],
            details={"method": "email"},
            **meta,
        )


class ResetPassword(Resource):
    rate_limits: ClassVar[dict[str, str]] = {"POST": RESET_PASSWORD}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self.body(req)
        token = required_text(body, "token", max_length=512)
        password = required_text(body, "new_password", max_length=4096)
        # The policy is checked first: a weak password must not burn the single-use token.
        self.services.hasher.check_new_password(password)
        try:
            user_id = self.services.reset_tokens.consume(token)
        except InvalidResetTokenError:
            raise ApiError(
                400, "invalid_reset_token", "The reset link is invalid or has expired."
            ) from None
        if users.get_user(self.services, user_id) is None:
            raise ApiError(400, "invalid_reset_token", "The reset link is invalid or has expired.")
        users.set_password_hash(self.services, user_id, self.services.hasher.hash(password))
        revoked = self.services.sessions.revoke_all(user_id, reason="password_reset")
        self.services.audit.record(
            SecurityEventType.PASSWORD_RESET,
            actor_id=user_id,
            subject_id=user_id,
            details={"method": "email", "session_count": revoked},
            **audit_meta(req),
        )
        resp.media = {"message": "Your password has been changed. Please log in."}


OPENAPI_PATHS: dict[str, Any] = {
    "/api/auth/forgot-password": {
        "post": operation(
            "Ask for a password reset link (same answer whether or not the email exists)",
            tag="auth",
            auth="none",
            request=obj({"email": {"type": "string", "maxLength": 320}}, required=("email",)),
            responses={202: obj({"message": {"type": "string"}}, required=("message",))},
        )
    },
    "/api/auth/reset-password": {
        "post": operation(
            "Choose a new password with a reset token; every session is revoked",
            tag="auth",
            auth="none",
            request=obj(
                {
                    "token": {"type": "string", "maxLength": 512},
                    "new_password": {"type": "string", "maxLength": 4096},
                },
                required=("token", "new_password"),
            ),
            responses={200: obj({"message": {"type": "string"}}, required=("message",))},
        )
    },
}


def register(app: Router, services: Services) -> None:
    app.add_route("/api/auth/forgot-password", ForgotPassword(services))
    app.add_route("/api/auth/reset-password", ResetPassword(services))
