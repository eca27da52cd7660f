"""The one map from the library's error tree to HTTP answers, shared by the reference server and
every framework integration, so they all answer alike (SRV-2).

An answer is ``{"error": <message>, "code": <code>}`` plus named extra fields, with the status
of the first matching class (most specific first). Messages come from this table, never from
the exception, so nothing the core keeps for the audit log (and no stack trace) reaches a
client. Errors not in the tree are not described: the caller answers 500 and logs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from storno_security import errors as e

__all__ = ["ERROR_MAP", "TOO_MANY", "HttpError", "describe_error", "rate_limit_headers"]

TOO_MANY: Final = "Too many requests. Please try again later."
_UNAVAILABLE = "Service temporarily unavailable."
_NOT_FOUND = (404, "not_found", "Not found.")


@attrs.frozen(kw_only=True)
class HttpError:
    """How to answer an error: status, stable code, safe message, headers, extra body fields."""

    status: int
    code: str
    message: str
    headers: Mapping[str, str] = attrs.field(factory=dict)
    extra: Mapping[str, Any] = attrs.field(factory=dict)

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "code": self.code, **self.extra}


#: (error class, HTTP status, code, message), most specific first.
ERROR_MAP: Final[tuple[tuple[type[BaseException], int, str, str], ...]] = (
    # Rate limits (RL-3, RL-4): over the limit 429, storage down 503 (fail closed).
    (e.RateLimitExceededError, 429, "rate_limited", TOO_MANY),
    (e.RateLimitUnavailableError, 503, "rate_limit_unavailable", _UNAVAILABLE),
    # Passwords and accounts.
    (e.PasswordPolicyError, 422, "weak_password", "The password does not meet the policy."),
    (e.InvalidPasswordError, 401, "invalid_credentials", "Invalid email or password."),
    (e.UnsupportedHashError, 401, "invalid_credentials", "Invalid email or password."),
    (e.InvalidEmailError, 422, "invalid_email", "The email address is not valid."),
    (e.InvalidResetTokenError, 400, "invalid_reset_token", "Invalid or expired reset link."),
    (
        e.InvalidConfirmationTokenError,
        400,
        "invalid_confirmation_token",
        "Invalid or expired confirmation link.",
    ),
    # The caller's own account is gone (deleted while its token lives): the token is void.
    (e.AccountNotFoundError, 401, "invalid_token", "Invalid or expired access token."),
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
    (e.OrganizationNotFoundError, *_NOT_FOUND),
    (e.CompanyNotFoundError, *_NOT_FOUND),
    (e.MembershipNotFoundError, *_NOT_FOUND),
    (e.InvitationNotFoundError, *_NOT_FOUND),
    (
        e.InvitationVoidError,
        409,
        "invitation_void",
        "The person who invited you can no longer grant this access; ask for a new invitation.",
    ),
    (e.DuplicateMembershipError, 409, "already_a_member", "The user is already a member."),
    (e.PermissionDeniedError, 403, "forbidden", "You do not have permission for this action."),
    # Vault, license, XML.
    (e.InvalidCiphertextError, 500, "vault_error", "A stored secret could not be opened."),
    (e.InvalidLicenseError, 422, "invalid_license", "The license is not valid."),
    (e.XmlParseError, 422, "invalid_xml", "The XML document was refused."),
    (e.InvalidXmlSignatureError, 422, "invalid_signature", "The XML signature is not valid."),
    (e.XmlSchemaError, 422, "schema_invalid", "The document does not match the schema."),
    (e.UnknownSchemaProviderError, 404, "unknown_provider", "Unknown schema provider."),
    (e.SchemaUnavailableError, 503, "schema_unavailable", "Schemas are not installed."),
    # Concurrency and stores.
    (e.ConcurrentChangeError, 409, "conflict", "It changed meanwhile; try again."),
    (e.StoreUnavailableError, 503, "unavailable", _UNAVAILABLE),
    (e.StoreError, 500, "internal_error", "Internal server error."),
)

#: Codes and messages chosen by an error's ``reason`` where one class covers several answers.
_BY_REASON: Final[Mapping[type[BaseException], Mapping[str, tuple[int, str, str]]]] = {
    e.AccountExistsError: {
        "email_taken": (409, "email_taken", "An account with this email already exists."),
        "google_taken": (
            409,
            "google_account_taken",
            "This Google account is linked to another account.",
        ),
        "account_exists": (
            409,
            "account_exists",
            "An account with this email exists: log in with it, then link Google in your "
            "account settings.",
        ),
    },
    e.AccountStateError: {
        "mfa_enabled": (409, "mfa_already_enabled", "MFA is already on."),
        "mfa_not_enabled": (409, "mfa_not_enabled", "MFA is not on."),
        "no_pending_enrolment": (409, "no_pending_enrolment", "Start the TOTP set-up first."),
        "google_linked": (409, "google_already_linked", "A Google account is already linked."),
        "google_disabled": (404, "not_enabled", "Google sign-in is not configured."),
        "passkeys_disabled": (404, "not_enabled", "Passkeys are not configured."),
        "email_not_confirmed": (
            403,
            "email_not_confirmed",
            "Confirm your email address first: use the link we sent you.",
        ),
    },
    e.InvitationNotFoundError: {
        "accepted": (409, "invitation_accepted", "This invitation was accepted already."),
        "declined": (409, "invitation_declined", "This invitation was declined."),
        "expired": (409, "invitation_expired", "This invitation has expired."),
    },
}


def rate_limit_headers(status: e.LimitStatus) -> dict[str, str]:
    """The ``RateLimit-*`` headers of a rate-limit status (RL-3)."""
    return {
        "RateLimit-Limit": str(status.limit),
        "RateLimit-Remaining": str(status.remaining),
        "RateLimit-Reset": str(status.reset),
    }


def _lookup(exc: BaseException) -> tuple[int, str, str] | None:
    for cls, choices in _BY_REASON.items():
        if isinstance(exc, cls):
            found = choices.get(getattr(exc, "reason", ""))
            if found is not None:
                return found
    for cls, status, code, message in ERROR_MAP:
        if isinstance(exc, cls):
            return status, code, message
    return None


def describe_error(exc: BaseException) -> HttpError | None:
    """The answer to ``exc`` if it belongs to the library's error tree (else ``None``: answer
    500 and log it).

    The extra fields and headers a client needs: ``Retry-After`` and ``RateLimit-*`` on 429,
    ``WWW-Authenticate`` on a bad token, ``accepted`` (the proofs that would do) on a
    re-authentication refusal, ``organization_ids`` when ownership must be handed over first,
    ``errors`` (line, message) when a document breaks its schema.
    """
    if isinstance(exc, e.ReauthenticationRequiredError):
        step_up_only = exc.accepted == ("step_up_token",)
        accepted = " or ".join(exc.accepted) or "a password or a second factor"
        return HttpError(
            status=403,
            code="step_up_required" if step_up_only else "reauthentication_required",
            message=f"Confirm it is you: send {accepted}.",
            extra={"accepted": list(exc.accepted)},
        )
    if isinstance(exc, e.OwnershipTransferRequiredError):
        return HttpError(
            status=409,
            code="ownership_transfer_required",
            message="Transfer the ownership of your organizations with members first.",
            extra={"organization_ids": list(exc.organization_ids)},
        )
    found = _lookup(exc)
    if found is None:
        return None
    status, code, message = found
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(exc, e.RateLimitExceededError):
        headers.update(rate_limit_headers(exc.status))
        headers["Retry-After"] = str(max(1, exc.status.retry_after))
    elif isinstance(exc, e.MfaLockedError):
        headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, e.XmlSchemaError):
        extra["errors"] = [{"line": line, "message": text} for line, text in exc.errors[:50]]
    if status == 401 and code == "invalid_token":
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    if status == 503:
        headers.setdefault("Retry-After", "1")
    return HttpError(status=status, code=code, message=message, headers=headers, extra=extra)
