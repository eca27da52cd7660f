"""The kit over Falcon: routes declared once with their body schemas (validation and OpenAPI
from one declaration), one middleware (request id and context, authentication, rate limits,
security headers), the one error map, and the kit's HTTP API ready to mount
(:mod:`.routes`): sign-up, sign-in with MFA, refresh, the caller's own account, passkeys, API
keys, JWKS and OpenAPI. Needs the ``server`` extra.

    from storno_security.integrations.falcon import Api, ApiOptions, build_app
    from storno_security.integrations.falcon.routes import ROUTES

    app = build_app(Api(kit=kit, options=ApiOptions(public_url=url), state=None), ROUTES)
"""

from storno_security.integrations.falcon.app import build_app
from storno_security.integrations.falcon.errors import ApiError
from storno_security.integrations.falcon.routing import (
    Api,
    ApiOptions,
    Body,
    Ctx,
    Route,
    Routes,
    bad_request,
    iso,
)

__all__ = [
    "Api",
    "ApiError",
    "ApiOptions",
    "Body",
    "Ctx",
    "Route",
    "Routes",
    "bad_request",
    "build_app",
    "iso",
]
