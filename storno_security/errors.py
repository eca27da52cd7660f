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

__all__ = [
    "CorruptRecordError",
    "IdentityProviderUnavailableError",
    "InvalidAccessTokenError",
    "InvalidIdTokenError",
    "InvalidKeyError",
    "InvalidPasskeyError",
    "InvalidPasswordError",
    "InvalidRefreshTokenError",
    "KeyRingError",
    "OidcError",
    "PasskeyCloneSuspectedError",
    "PasskeyError",
    "PasswordError",
    "PasswordPolicyError",
    "RefreshTokenReuseError",
    "StoreError",
    "StoreUnavailableError",
    "StornoSecurityError",
    "TokenError",
    "UnknownKeyError",
    "UnsupportedHashError",
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
