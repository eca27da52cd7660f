"""The error tree of storno-security.

Every error the library raises on purpose derives from :class:`StornoSecurityError`, which is
never raised itself. Each capability has its own subtree, so an application can catch
``TokenError`` without catching a password-policy error.

Errors an attacker can trigger are *opaque*: one class and one message for every way a token,
code or ciphertext can be wrong. The reason is kept in a non-secret ``reason`` attribute for
logs and the audit trail; it never contains the secret itself.

Bad arguments from the calling code (wrong types, impossible policy values) stay ``TypeError``
and ``ValueError``.
"""

from __future__ import annotations

from typing import Protocol

__all__ = [
    "AccountError",
    "AccountExistsError",
    "AccountNotFoundError",
    "AccountStateError",
    "ApiKeyError",
    "ApiKeyPermissionsError",
    "CompanyNotFoundError",
    "CompanyRequiredError",
    "ConcurrentChangeError",
    "CorruptRecordError",
    "DuplicateMembershipError",
    "IdentityProviderUnavailableError",
    "InvalidAccessTokenError",
    "InvalidApiKeyError",
    "InvalidCiphertextError",
    "InvalidConfirmationTokenError",
    "InvalidEmailError",
    "InvalidIdTokenError",
    "InvalidKeyError",
    "InvalidLicenseError",
    "InvalidMfaChallengeError",
    "InvalidMfaCodeError",
    "InvalidPasskeyError",
    "InvalidPasswordError",
    "InvalidRefreshTokenError",
    "InvalidResetTokenError",
    "InvalidStepUpTokenError",
    "InvalidXmlSignatureError",
    "InvitationNotFoundError",
    "InvitationVoidError",
    "KeyRingError",
    "LicenseError",
    "LicenseKeyError",
    "MembershipNotFoundError",
    "MfaError",
    "MfaLockedError",
    "OidcError",
    "OrganizationNotFoundError",
    "OrganizationRequiredError",
    "OwnershipTransferRequiredError",
    "PasskeyCloneSuspectedError",
    "PasskeyError",
    "PasswordError",
    "PasswordPolicyError",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimitExceededError",
    "RateLimitUnavailableError",
    "RbacError",
    "ReauthenticationRequiredError",
    "RefreshTokenReuseError",
    "SchemaUnavailableError",
    "StaleSecondFactorError",
    "StoreError",
    "StoreUnavailableError",
    "StornoSecurityError",
    "TokenError",
    "UnknownKeyError",
    "UnknownSchemaProviderError",
    "UnsupportedHashError",
    "VaultError",
    "VaultKeyError",
    "XmlError",
    "XmlParseError",
    "XmlSchemaError",
]


class StornoSecurityError(Exception):
    """Root of every error raised by storno-security. Never raised itself."""

    #: Short, non-secret, machine-readable reason. Safe to log; not meant for the attacker.
    reason: str = "error"

    def __init__(self, message: str | None = None, *, reason: str | None = None) -> None:
        if reason is not None:
            self.reason = reason
        super().__init__(message if message is not None else self.default_message)

    #: The message shown when none is given.
    default_message = "security error"


# --- passwords -------------------------------------------------------------------------------


class PasswordError(StornoSecurityError):
    """Root of the password subtree."""

    default_message = "password error"


class PasswordPolicyError(PasswordError, ValueError):
    """A new password breaks the policy (too short, too long, not text).

    The message says what the rule is; it never echoes the password.
    """

    default_message = "password does not meet the policy"


class InvalidPasswordError(PasswordError):
    """The password does not match, or the account does not exist (the two are not told apart)."""

    default_message = "invalid credentials"


class UnsupportedHashError(PasswordError):
    """A stored password hash is malformed or of a scheme this library does not verify."""

    default_message = "stored password hash is malformed or unsupported"


# --- tokens ----------------------------------------------------------------------------------


class TokenError(StornoSecurityError):
    """Root of the token subtree (access tokens, refresh tokens, signing keys)."""

    default_message = "token error"


class InvalidAccessTokenError(TokenError):
    """An access token is not acceptable, for any reason.

    One message for every cause (malformed, bad signature, unknown key, wrong issuer or audience,
    expired, not yet valid, session revoked). ``reason`` names the cause for logs.
    """

    default_message = "invalid access token"


class InvalidRefreshTokenError(TokenError):
    """A refresh token is unknown, malformed, expired, revoked, or belongs to someone else."""

    default_message = "invalid refresh token"


class RefreshTokenReuseError(InvalidRefreshTokenError):
    """An already-rotated refresh token was presented; its whole family has been revoked.

    Attributes:
        family_id: the revoked family (non-secret).
        user_id: the family's owner (non-secret).
    """

    reason = "reused"

    def __init__(self, *, family_id: str, user_id: str) -> None:
        super().__init__()
        self.family_id = family_id
        self.user_id = user_id


class KeyRingError(TokenError):
    """Root of signing-key problems: bad key material or a ring operation that is not allowed."""

    default_message = "key ring error"


class InvalidKeyError(KeyRingError):
    """Key material is malformed, encrypted without the right password, of the wrong type, or
    too weak for the policy."""

    default_message = "invalid key material"


class UnknownKeyError(KeyRingError, KeyError):
    """No key with this ``kid`` is in the ring."""

    default_message = "no such key in the ring"

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else self.default_message


# --- stores ----------------------------------------------------------------------------------


class StoreError(StornoSecurityError):
    """Root of storage problems, whatever the backend."""

    default_message = "storage error"


class StoreUnavailableError(StoreError):
    """The backend (database, Redis) could not be reached or refused the operation.

    The operation had no effect, or its effect is unknown and it may be retried: every store
    operation is a single atomic statement or transaction.
    """

    default_message = "storage backend unavailable"


class CorruptRecordError(StoreError):
    """A stored row does not have the shape the library wrote. Nothing was changed."""

    default_message = "stored record is malformed"


# --- rbac and tenancy ------------------------------------------------------------------------


class RbacError(StornoSecurityError):
    """Root of the RBAC and tenancy subtree (permissions, organizations, companies, members)."""

    default_message = "access control error"


class PermissionDeniedError(RbacError):
    """The principal may not do this, for any reason (RBAC-2, RBAC-5, KEY-4, KEY-5).

    One message for every cause (no membership, permission outside the role, the key's scope or
    its explicit list, a key asking for a credential permission, a forbidden membership change).
    ``reason`` names the cause for logs and the audit trail.
    """

    default_message = "permission denied"


class OrganizationNotFoundError(RbacError):
    """The organization named by the request is unknown, malformed, deleted, or not the
    caller's: the cases are not told apart (RBAC-3)."""

    default_message = "organization not found"


class OrganizationRequiredError(RbacError):
    """No organization was named and the caller has no default membership (RBAC-3)."""

    default_message = "organization required"


class CompanyNotFoundError(RbacError):
    """The company named by ``X-Company`` is malformed, unknown, soft-deleted, or belongs to
    another organization: the cases are not told apart, so ids cannot be probed (RBAC-3)."""

    default_message = "company not found"


class CompanyRequiredError(RbacError):
    """A company-scoped operation was called without a company (missing ``X-Company``)."""

    default_message = "company required"


class MembershipNotFoundError(RbacError):
    """The membership to change is unknown, removed, or of another organization (RBAC-5)."""

    default_message = "membership not found"


class DuplicateMembershipError(RbacError):
    """A user would have, or has, two live memberships in one organization (RBAC-5).

    ``reason`` is ``already_a_member`` when an addition is refused, ``duplicate_membership``
    when the memberships handed to tenancy resolution hold two live ones for one organization
    (the application's tables lack the unique ``(user_id, organization_id)`` constraint).
    """

    default_message = "already a member of this organization"


class InvitationNotFoundError(RbacError):
    """The invitation is unknown, not addressed to this account's confirmed address, or no
    longer open: the cases are not told apart (RBAC-6). ``reason``: ``unknown``,
    ``not_addressee``, ``accepted``, ``declined``, ``withdrawn``, ``expired``."""

    default_message = "invitation not found"


class InvitationVoidError(RbacError):
    """The invitation is open, but its inviter can no longer grant what it offers (removed,
    demoted, or no longer holding ``member.manage``): it cannot be accepted (RBAC-6)."""

    default_message = "the invitation can no longer be accepted"


# --- vault -----------------------------------------------------------------------------------


class VaultError(StornoSecurityError):
    """Root of the vault subtree (sealed secrets and their keys)."""

    default_message = "vault error"


class InvalidCiphertextError(VaultError):
    """A sealed secret cannot be opened, for any reason.

    One message for every cause (malformed token, unknown version, unknown or retired key, wrong
    key, tampering, wrong associated data, bad padding). ``reason`` names the cause for logs:
    ``malformed``, ``version``, ``unknown_key``, ``mac``, ``padding``.
    """

    default_message = "invalid sealed secret"


class VaultKeyError(VaultError, ValueError):
    """Vault key material is malformed (not base64, wrong length), or a key ring is inconsistent
    (two keys with one id). The message never contains key material."""

    default_message = "invalid vault key"


# --- license ---------------------------------------------------------------------------------


class LicenseError(StornoSecurityError):
    """Root of the offline-license subtree."""

    default_message = "license error"


class InvalidLicenseError(LicenseError):
    """A license token is not acceptable, for any reason but mere expiry (which is a status).

    One message for every cause; ``reason`` names it for logs: ``malformed``, ``header``,
    ``algorithm``, ``unknown_key``, ``signature``, ``claim_<name>``, ``issuer``,
    ``organization_mismatch``, ``not_yet_valid``, ``instance_mismatch``, ``instance_required``.
    """

    default_message = "invalid license"


class LicenseKeyError(LicenseError, ValueError):
    """License key material is malformed, of an unsupported type, or too weak."""

    default_message = "invalid license key"


# --- XML signing -----------------------------------------------------------------------------


class XmlError(StornoSecurityError):
    """Root of the XML subtree (safe parsing, signatures, schema validation)."""

    default_message = "XML error"


class XmlParseError(XmlError):
    """An XML document was refused before use: malformed, a DTD, an entity, too large or too deep.

    One message for every cause; ``reason`` names it (``malformed``, ``dtd``, ``entity``,
    ``too_large``, ``too_deep``, ``external``; when signing, ``not_canonicalisable`` for a
    document exclusive C14N refuses, e.g. a namespace with a relative URI) for logs.
    """

    default_message = "XML document refused"


class InvalidXmlSignatureError(XmlError):
    """An XML signature is not acceptable, for any reason.

    One message for every cause (no signature, bad digest, bad signature value, untrusted or
    expired certificate, forbidden algorithm, a reference that does not cover the document).
    ``reason`` names the cause for logs.
    """

    default_message = "invalid XML signature"


class XmlSchemaError(XmlError):
    """A document does not match its provider's schema.

    Attributes:
        errors: the schema's complaints as ``(line, message)`` pairs, in document order.
    """

    default_message = "XML document does not match the schema"

    def __init__(self, errors: tuple[tuple[int, str], ...], *, reason: str = "invalid") -> None:
        lines = "; ".join(f"line {line}: {message}" for line, message in errors[:10])
        super().__init__(f"{self.default_message}: {lines}" if lines else None, reason=reason)
        self.errors = errors


class UnknownSchemaProviderError(XmlError, LookupError):
    """No schema provider of this name is known to the registry."""

    default_message = "unknown schema provider"


class SchemaUnavailableError(XmlError):
    """The provider is known but its schema files are not there (not shipped, not registered,
    or an import that would leave the schema directory)."""

    default_message = "schema not available"


# --- rate limiting ---------------------------------------------------------------------------


class RateLimitError(StornoSecurityError):
    """Root of the rate-limiting subtree."""

    default_message = "rate limit error"


class RateLimitExceededError(RateLimitError):
    """The client is over the limit of a policy; the request must not be served (RL-3).

    Raised before any work is done for the request (RL-5). The message is the body the spec
    prescribes; ``status`` carries what the response headers need.

    Attributes:
        status: a :class:`~storno_security.ratelimit.RateLimitStatus` with ``remaining == 0``
            and ``retry_after >= 1`` (seconds).
    """

    default_message = "Too many requests. Please try again later."
    reason = "exceeded"

    def __init__(self, *, status: LimitStatus) -> None:
        super().__init__()
        self.status = status


class LimitStatus(Protocol):
    """What a refused rate-limit check reports (the shape of
    :class:`~storno_security.ratelimit.RateLimitStatus`; the error tree is a leaf and imports
    no capability)."""

    @property
    def policy(self) -> str: ...
    @property
    def limit(self) -> int: ...
    @property
    def remaining(self) -> int: ...
    @property
    def reset(self) -> int: ...
    @property
    def retry_after(self) -> int: ...


class RateLimitUnavailableError(RateLimitError, StoreUnavailableError):
    """The rate-limit storage could not be reached or failed, and the policy fails closed (RL-4).

    The request must not be served: a server answers 503. Policies of authentication endpoints
    always fail closed; others may be set to fail open, in which case this is not raised.

    Attributes:
        policy: the name of the policy that was being checked (non-secret).
    """

    default_message = "rate-limit storage unavailable"
    reason = "unavailable"

    def __init__(self, *, policy: str) -> None:
        super().__init__()
        self.policy = policy


# --- API keys --------------------------------------------------------------------------------


class ApiKeyError(StornoSecurityError):
    """Root of the API-key subtree."""

    default_message = "API key error"


class InvalidApiKeyError(ApiKeyError):
    """An API key is not acceptable, for any reason.

    One message for every cause; ``reason`` names it for logs: ``malformed`` (wrong shape or
    checksum, refused before any lookup), ``unknown`` (no such key, or the secret does not
    match), ``revoked``, ``expired``. ``revoked`` and ``expired`` are only reported once the
    whole key has matched, so they tell nothing to someone who does not hold it.
    """

    default_message = "invalid API key"


class ApiKeyPermissionsError(ApiKeyError):
    """A key was asked for permissions it may not carry.

    ``reason`` is ``exceeds_creator`` (an explicit permission that its creator does not hold,
    KEY-4) or ``forbidden`` (a permission of a family no API key may ever have, KEY-5).
    """

    default_message = "the API key may not carry these permissions"


# --- mfa -------------------------------------------------------------------------------------


class MfaError(StornoSecurityError):
    """Root of the MFA subtree (TOTP, backup codes, MFA challenges, step-up tokens)."""

    default_message = "multi-factor authentication error"


class InvalidMfaCodeError(MfaError):
    """A second-factor code is not acceptable, for any reason.

    One message for every cause (malformed, wrong, outside the time window, a TOTP step accepted
    before, a backup code used already, no MFA set up). ``reason`` names the cause for logs.

    Attributes:
        attempts_left: when the code was presented against an MFA challenge, how many more
            failures the challenge takes before it dies (non-secret); otherwise ``None``.
    """

    default_message = "invalid verification code"

    def __init__(
        self,
        message: str | None = None,
        *,
        reason: str | None = None,
        attempts_left: int | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.attempts_left = attempts_left


class MfaLockedError(MfaError):
    """Too many wrong second-factor codes for this user: every code is refused, even a right
    one, until the failure window ends (NIST SP 800-63B section 5.2.2).

    Raised before the code is looked at, so it tells nothing about the code. Not an
    :class:`InvalidMfaCodeError`: a server maps it on its own (e.g. 429 with ``Retry-After``).

    Attributes:
        retry_after: seconds (at least 1) until codes are evaluated again (non-secret).
    """

    default_message = "too many failed verification attempts; try again later"
    reason = "locked"

    def __init__(self, message: str | None = None, *, retry_after: int) -> None:
        if isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 1:
            raise ValueError("retry_after must be a positive int")
        super().__init__(message)
        self.retry_after = retry_after


class InvalidMfaChallengeError(MfaError):
    """An MFA challenge token is malformed, unknown, expired, used, or dead after too many
    failed attempts (the causes are not told apart). The user has to log in again."""

    default_message = "invalid or expired MFA challenge"


class InvalidStepUpTokenError(MfaError):
    """A step-up verification token is malformed, unknown, expired, used, or was issued to
    another user or for another action (the causes are not told apart)."""

    default_message = "invalid or expired verification token"


class StaleSecondFactorError(MfaError):
    """A step-up token was asked for with a second factor verified too long ago: the action
    needs a fresh one."""

    default_message = "a fresh second factor is required"


# --- passkeys --------------------------------------------------------------------------------


class PasskeyError(StornoSecurityError):
    """Root of the passkey (WebAuthn) subtree."""

    default_message = "passkey error"


class InvalidPasskeyError(PasskeyError):
    """A passkey registration or login response is not acceptable, for any reason.

    One message for every cause (malformed, unknown or replayed or expired challenge, wrong
    origin or relying party, user not verified, bad signature, unknown credential, credential of
    another user, flagged credential). ``reason`` names the cause for logs.
    """

    default_message = "passkey verification failed"


class PasskeyCloneSuspectedError(InvalidPasskeyError):
    """A validly signed assertion carried a sign count that did not grow (PK-3).

    The credential may have been cloned: the login is refused and the credential is flagged.

    Attributes:
        credential_id: the credential concerned (non-secret).
        user_id: its owner (non-secret).
    """

    reason = "sign_count"

    def __init__(self, *, credential_id: bytes, user_id: str) -> None:
        super().__init__()
        self.credential_id = credential_id
        self.user_id = user_id


# --- OpenID Connect (Google login) -----------------------------------------------------------


class OidcError(StornoSecurityError):
    """Root of the OpenID Connect (Google login) subtree."""

    default_message = "identity token error"


class InvalidIdTokenError(OidcError):
    """An ID token is not acceptable, for any reason.

    One message for every cause (malformed, algorithm, unknown key, bad signature, wrong issuer
    or audience, expired, issued in the future, email not verified). ``reason`` names the cause.
    """

    default_message = "invalid identity token"


class IdentityProviderUnavailableError(OidcError):
    """The provider's signing keys (JWKS) could not be obtained or are malformed.

    Not the token's fault: the login may be retried later.
    """

    default_message = "identity provider keys unavailable"


# --- accounts --------------------------------------------------------------------------------


class AccountError(StornoSecurityError):
    """Root of the accounts subtree (email addresses, password reset) (ACC-1, ACC-2)."""

    default_message = "account error"


class InvalidEmailError(AccountError, ValueError):
    """An email address is not plausible: not text, too long, not exactly one ``@``, a bad
    local part or domain, or a forbidden character (whitespace, control, quote, ``<>``, ...).

    The message says which rule was broken; it never echoes the address (personal data).
    ``reason`` names the rule for logs: ``too_long``, ``at_sign``, ``local_part``, ``domain``,
    ``character``, ``unstable``.
    """

    default_message = "invalid email address"


class InvalidResetTokenError(AccountError):
    """A password-reset token is not acceptable, for any reason (ACC-2).

    One message for every cause; ``reason`` names it for logs: ``malformed`` (not a token of
    this library's shape, refused before any store lookup), ``unknown_or_used`` (never issued,
    used already, revoked, or a sibling of a token used since), ``expired``.
    """

    default_message = "invalid or expired password reset token"


class InvalidConfirmationTokenError(AccountError):
    """An email-confirmation token is not acceptable, for any reason (ACC-5).

    One message for every cause; ``reason``: ``malformed``, ``unknown_or_used``, ``expired``,
    ``address_changed`` (the account's address is no longer the one the token proves).
    """

    default_message = "invalid or expired confirmation token"


class AccountExistsError(AccountError):
    """Registration or linking would give a second account the same address or Google account.

    ``reason``: ``email_taken`` or ``google_taken``.
    """

    default_message = "an account with this identity exists already"


class AccountNotFoundError(AccountError):
    """The account is unknown or deleted (a flow called with a user id that is gone)."""

    default_message = "account not found"


class AccountStateError(AccountError):
    """The account is not in a state that allows this act; ``reason`` names the state:
    ``mfa_enabled``, ``mfa_not_enabled``, ``no_pending_enrolment``, ``google_linked``,
    ``no_password``, ``email_not_confirmed`` (login refused by the policy until the address is
    proven, ACC-5), ``last_sign_in_method``.
    """

    default_message = "the account does not allow this now"


class ReauthenticationRequiredError(AccountError):
    """A sensitive act needs proof beyond the session, and none (or not the right one) was
    given (ACC-6).

    Attributes:
        action: the act.
        accepted: the proofs that would do, strongest first: ``"step_up_token"``,
            ``"current_password"``, ``"fresh_login"``.
    """

    default_message = "re-authentication required"

    def __init__(self, *, action: str, accepted: tuple[str, ...], reason: str) -> None:
        super().__init__(reason=reason)
        self.action = action
        self.accepted = accepted


class OwnershipTransferRequiredError(AccountError):
    """The account is the Owner of organizations that have other members: ownership must be
    handed over before the account can be deleted (RBAC-6).

    Attributes:
        organization_ids: those organizations.
    """

    default_message = "transfer ownership first"

    def __init__(self, organization_ids: tuple[str, ...]) -> None:
        super().__init__(reason="owner_with_members")
        self.organization_ids = organization_ids


class ConcurrentChangeError(StoreError):
    """What a decision was based on changed before it could be applied (a membership, an
    invitation, a password): nothing was written; read again and retry."""

    reason = "changed_meanwhile"
    default_message = "changed meanwhile"
