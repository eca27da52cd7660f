"""The kit's flows over HTTP, ready to mount: sign-up and sign-in, the caller's own account,
MFA and step-up, passkeys, API keys, and the public documents (JWKS, OpenAPI)."""

from __future__ import annotations

from storno_security.integrations.falcon.routes import api_keys, auth, me, meta, mfa, passkeys
from storno_security.integrations.falcon.routing import Routes

__all__ = ["ROUTES"]

#: Every route module of the kit's HTTP API, in order.
ROUTES: tuple[Routes, ...] = (
    meta.routes,
    auth.routes,
    me.routes,
    mfa.routes,
    passkeys.routes,
    api_keys.routes,
)
