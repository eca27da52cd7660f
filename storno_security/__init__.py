"""storno-security: the security model of an EU e-invoicing platform, as a library.

The top level re-exports the safe public API of every capability and the whole error tree.
Importing it has no side effects: no clock read, no key generated, no file or network touched.
Store implementations live in :mod:`storno_security.stores` and are imported on demand.
"""

from storno_security._compare import constant_time_equal
from storno_security.clock import Clock, FrozenClock, SystemClock
from storno_security.errors import (
    CorruptRecordError,
    IdentityProviderUnavailableError,
    InvalidAccessTokenError,
    InvalidIdTokenError,
    InvalidKeyError,
    InvalidPasskeyError,
    InvalidPasswordError,
    InvalidRefreshTokenError,
    KeyRingError,
    OidcError,
    PasskeyCloneSuspectedError,
    PasskeyError,
    PasswordError,
    PasswordPolicyError,
    RefreshTokenReuseError,
    StoreError,
    StoreUnavailableError,
    StornoSecurityError,
    TokenError,
    UnknownKeyError,
    UnsupportedHashError,
)
from storno_security.passwords import PasswordHasher, PasswordPolicy, VerifiedPassword
from storno_security.tokens import (
    AccessTokenClaims,
    AccessTokenIssuer,
    AccessTokenVerifier,
    KeyRing,
    PublicKey,
    SessionEvent,
    SessionManager,
    SigningKey,
    TokenPair,
    TokenPolicy,
    VerifiedTokenCache,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "AccessTokenClaims",
    "AccessTokenIssuer",
    "AccessTokenVerifier",
    "Clock",
    "CorruptRecordError",
    "FrozenClock",
    "IdentityProviderUnavailableError",
    "InvalidAccessTokenError",
    "InvalidIdTokenError",
    "InvalidKeyError",
    "InvalidPasskeyError",
    "InvalidPasswordError",
    "InvalidRefreshTokenError",
    "KeyRing",
    "KeyRingError",
    "OidcError",
    "PasskeyCloneSuspectedError",
    "PasskeyError",
    "PasswordError",
    "PasswordHasher",
    "PasswordPolicy",
    "PasswordPolicyError",
    "PublicKey",
    "RefreshTokenReuseError",
    "SessionEvent",
    "SessionManager",
    "SigningKey",
    "StoreError",
    "StoreUnavailableError",
    "StornoSecurityError",
    "SystemClock",
    "TokenError",
    "TokenPair",
    "TokenPolicy",
    "UnknownKeyError",
    "UnsupportedHashError",
    "VerifiedPassword",
    "VerifiedTokenCache",
    "__version__",
    "constant_time_equal",
]
