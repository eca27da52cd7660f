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
    "ApiKeyError",
    "ApiKeyPermissionsError",
    "CorruptRecordError",
    "InvalidAccessTokenError",
    "InvalidApiKeyError",
    "InvalidKeyError",
    "InvalidPasswordError",
    "InvalidRefreshTokenError",
    "KeyRingError",
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
