"""Google login: verifying Google ID tokens with keys from an application-supplied fetcher.

Typical wiring::

    policy = GoogleIdTokenPolicy(client_ids=("1234.apps.googleusercontent.com",))
    fetcher = CachingJwksFetcher(load_google_certs, clock=SystemClock())  # your HTTP call
    verifier = GoogleIdTokenVerifier(policy, fetcher=fetcher, clock=SystemClock())
    identity = verifier.verify(id_token)     # identity.subject, identity.email, identity.name
"""

from storno_security.oidc.google import GoogleIdentity, GoogleIdTokenVerifier
from storno_security.oidc.jwks import CachingJwksFetcher, JwksFetcher, StaticJwksFetcher
from storno_security.oidc.policy import (
    GOOGLE_ISSUERS,
    MAX_LEEWAY,
    RSA_ALGORITHMS,
    GoogleIdTokenPolicy,
)

__all__ = [
    "GOOGLE_ISSUERS",
    "MAX_LEEWAY",
    "RSA_ALGORITHMS",
    "CachingJwksFetcher",
    "GoogleIdTokenPolicy",
    "GoogleIdTokenVerifier",
    "GoogleIdentity",
    "JwksFetcher",
    "StaticJwksFetcher",
]
