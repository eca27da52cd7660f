"""One map from the library's error tree to JSON errors (SRV-2).

Every error answer is ``{"error": <message>, "code": <code>}`` (plus ``request_id``), with the
status of the first matching class in :data:`ERROR_MAP` (most specific first). Messages come
from this table, never from the exception, so no detail the core keeps for the audit log (and
no stack trace) reaches a client. Anything unexpected is logged with its trace and answers 500.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

import falcon

from storno_security import errors as e

__all__ = ["ERROR_MAP", "ApiError", "handle_error", "raise_api_error", "rate_limit_headers"]

log = logging.getLogger("reference_server")

TOO_MANY = "Too many requests. Please try again later."


class ApiError(Exception):
    """An error the server itself decides: status, stable code, safe message, extra fields."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}


def raise_api_error(status: int, code: str, message: str, **extra: Any) -> NoReturn:
    raise ApiError(status, code, message, extra=extra or None)


#: (error class, HTTP status, code, message), most specific first.
ERROR_MAP: tuple[tuple[type[BaseException], int, str, str], ...] = (
    # Rate limits (RL-3, RL-4): over the limit 429, storage down 503 (fail closed).
    (e.RateLimitExceededError, 429, "rate_limited", TOO_MANY),
    (
        e.RateLimitUnavailableError,
        503,
        "rate_limit_unavailable",
        "Service temporarily unavailable.",
    ),
    # Passwords and accounts.
    (e.PasswordPolicyError, 422, "weak_password", "The password does not meet the policy."),
    (e.InvalidPasswordError, 401, "invalid_credentials", "Invalid email or password."),
    (e.UnsupportedHashError, 401, "invalid_credentials", "Invalid email or password."),
    # Tokens.
    (e.RefreshTokenReuseError, 401, "refresh_token_reused", "Refresh token was already used."),
    (e.InvalidRefreshTokenError, 401, "invalid_refresh_token", "Invalid refresh token."),
    (e.InvalidAccessTokenError, 401, "invalid_token", "Invalid or expired access token."),
    (e.InvalidApiKeyError, 401, "invalid_api_key", "Invalid API key."),
    (e.ApiKeyPermissionsError, 403, "forbidden", "The API key cannot be given these permissions."),
    # MFA.
    (e.MfaLockedError, 429, "mfa_locked", "Too many wrong codes. Please try again later."),
    (e.InvalidMfaChallengeError, 401, "invalid_mfa_token", "Invalid or expired MFA token."),
    (e.InvalidStepUpTokenError, 403, "step_up_required", "A fresh second factor is required."),
    (e.StaleSecondFactorError, 401, "invalid_mfa_code", "Invalid verification code."),
    (e.InvalidMfaCodeError, 401, "invalid_mfa_code", "Invalid verification code."),
    # Passkeys and Google.
    (e.InvalidPasskeyError, 401, "invalid_passkey", "Passkey verification failed."),
    (e.InvalidIdTokenError, 401, "invalid_id_token", "Google sign-in failed."),
    (e.IdentityProviderUnavailableError, 503, "provider_unavailable", "Google is unavailable."),
    # Tenancy (RBAC-3): unusable ids answer exactly as missing ones.
    (e.OrganizationRequiredError, 400, "organization_required", "X-Organization is required."),
    (e.CompanyRequiredError, 400, "company_required", "X-Company header is required."),
    (e.OrganizationNotFoundError, 404, "not_found", "Not found."),
    (e.CompanyNotFoundError, 404, "not_found", "Not found."),
    (e.MembershipNotFoundError, 404, "not_found", "Not found."),
    (e.DuplicateMembershipError, 409, "conflict", "The user is already a member."),
    (e.PermissionDeniedError, 403, "forbidden", "You do not have permission for this action."),
    # Vault, license, XML.
    (e.InvalidCiphertextError, 500, "vault_error", "A stored secret could not be opened."),
    (e.InvalidLicenseError, 422, "invalid_license", "The license is not valid."),
    (e.XmlParseError, 422, "invalid_xml", "The XML document was refused."),
    (e.InvalidXmlSignatureError, 422, "invalid_signature", "The XML signature is not valid."),
    (e.XmlSchemaError, 422, "schema_invalid", "The document does not match the schema."),
    (e.UnknownSchemaProviderError, 404, "unknown_provider", "Unknown schema provider."),
    (e.SchemaUnavailableError, 503, "schema_unavailable", "Schemas are not installed."),
    # Stores.
    (e.StoreUnavailableError, 503, "unavailable", "Service temporarily unavailable."),
    (e.StoreError, 500, "internal_error", "Internal server error."),
)


def rate_limit_headers(status: e.LimitStatus) -> dict[str, str]:
    """The ``RateLimit-*`` headers of a status (RL-3)."""
    return {
        "RateLimit-Limit": str(status.limit),
        "RateLimit-Remaining": str(status.remaining),
        "RateLimit-Reset": str(status.reset),
    }


def _lookup(exc: BaseException) -> tuple[int, str, str] | None:
    for cls, status, code, message in ERROR_MAP:
        if isinstance(exc, cls):
            return status, code, message
    return None


def _status_line(status: int) -> str:
    line: str = falcon.code_to_http_status(status)
    return line


def _respond(
    req: falcon.Request,
    resp: falcon.Response,
    status: int,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> None:
    body.setdefault("request_id", getattr(req.context, "request_id", None))
    resp.status = _status_line(status)
    resp.media = body
    resp.content_type = falcon.MEDIA_JSON
    for name, value in (headers or {}).items():
        resp.set_header(name, value)


def handle_error(
    req: falcon.Request, resp: falcon.Response, exc: BaseException, params: Any
) -> None:
    """Falcon's one error handler: every exception becomes a JSON error."""
    if isinstance(exc, ApiError):
        _respond(
            req,
            resp,
            exc.status,
            {"error": exc.message, "code": exc.code, **exc.extra},
            exc.headers,
        )
        return
    if isinstance(exc, falcon.HTTPError):
        status = int(exc.status_code)
        code = {
            400: "invalid_request",
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
            415: "unsupported_media_type",
        }.get(status, "http_error")
        message = exc.title or "Error"
        headers = dict(exc.headers or {})
        _respond(req, resp, status, {"error": message, "code": code}, headers)
        return
    found = _lookup(exc)
    if found is not None:
        status, code, message = found
        body: dict[str, Any] = {"error": message, "code": code}
        headers = {}
        if isinstance(exc, e.RateLimitExceededError):
            headers.update(rate_limit_headers(exc.status))
            headers["Retry-After"] = str(max(1, exc.status.retry_after))
        if isinstance(exc, e.MfaLockedError):
            headers["Retry-After"] = str(exc.retry_after)
        if isinstance(exc, e.XmlSchemaError):
            body["errors"] = [{"line": line, "message": text} for line, text in exc.errors[:50]]
        if status == 401 and code == "invalid_token":
            headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        if status >= 500:
            log.error(
                "request %s failed: %s",
                getattr(req.context, "request_id", "-"),
                type(exc).__name__,
                exc_info=exc,
            )
        _respond(req, resp, status, body, headers)
        return
    log.error(
        "request %s: unexpected %s",
        getattr(req.context, "request_id", "-"),
        type(exc).__name__,
        exc_info=exc,
    )
    _respond(req, resp, 500, {"error": "Internal server error.", "code": "internal_error"})
