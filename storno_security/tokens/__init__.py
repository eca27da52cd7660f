"""Token sessions: RS256 access tokens with ``kid``/JWKS and key rotation; refresh-token families
rotated on every use with reuse detection; per-user session epochs (JWT-1..JWT-3, REF-1..REF-4).

Typical wiring::

    ring = KeyRing.generate()
    policy = TokenPolicy(issuer="https://api.example.eu", audience="example-api")
    clock = SystemClock()
    state = MemorySessionStateStore()
    issuer = AccessTokenIssuer(ring, policy, clock=clock)
    verifier = AccessTokenVerifier(ring, policy, clock=clock, sessions=state)
    manager = SessionManager(issuer=issuer, policy=policy, families=MemoryRefreshFamilyStore(),
                             sessions=state, clock=clock)
    pair = manager.start("user-1")
    claims = verifier.verify(pair.access_token)
"""

from storno_security.tokens.access import (
    ACCESS_TOKEN_TYPE,
    AccessTokenClaims,
    AccessTokenIssuer,
    AccessTokenVerifier,
    IssuedAccessToken,
    VerifiedTokenCache,
)
from storno_security.tokens.keys import (
    MIN_RSA_BITS,
    KeyRing,
    PublicKey,
    SigningKey,
    load_public_key,
    rfc7638_thumbprint,
)
from storno_security.tokens.policy import RSA_ALGORITHMS, TokenPolicy
from storno_security.tokens.sessions import (
    SessionEvent,
    SessionManager,
    TokenPair,
    hash_refresh_token,
)
from storno_security.tokens.storage import (
    RefreshFamily,
    RefreshFamilyStore,
    Rotation,
    RotationOutcome,
    SessionState,
    SessionStateReader,
    SessionStateStore,
)

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "MIN_RSA_BITS",
    "RSA_ALGORITHMS",
    "AccessTokenClaims",
    "AccessTokenIssuer",
    "AccessTokenVerifier",
    "IssuedAccessToken",
    "KeyRing",
    "PublicKey",
    "RefreshFamily",
    "RefreshFamilyStore",
    "Rotation",
    "RotationOutcome",
    "SessionEvent",
    "SessionManager",
    "SessionState",
    "SessionStateReader",
    "SessionStateStore",
    "SigningKey",
    "TokenPair",
    "TokenPolicy",
    "VerifiedTokenCache",
    "hash_refresh_token",
    "load_public_key",
    "rfc7638_thumbprint",
]
