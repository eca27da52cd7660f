"""Middleware: request ids, security headers, authentication, rate limits (RL-1..RL-5).

Order per request: a request id; the caller from ``Authorization`` (``Bearer <jwt>`` or a bare
``af_...`` API key, KEY-4); then one rate-limit hit, before the resource runs (RL-5): a route's
named sliding-window policy (login, register, ...) or else the token bucket for authenticated
or unauthenticated callers (RL-2). A request with a bad credential is counted against the
unauthenticated bucket before it is refused, so invalid tokens cannot be tried unmetered.
"""

from __future__ import annotations

import uuid
from typing import Any

import falcon

from reference_server.context import Caller, client_ip, request_id_of
from reference_server.errors import rate_limit_headers
from reference_server.services import Services
from storno_security.errors import InvalidAccessTokenError, InvalidApiKeyError
from storno_security.ratelimit import API_AUTHENTICATED, API_UNAUTHENTICATED, client_key

__all__ = ["AuthMiddleware", "RateLimitMiddleware", "RequestIdMiddleware", "SecurityHeaders"]

API_KEY_PREFIX = "af_"


class RequestIdMiddleware:
    """Gives each request an id (``X-Request-Id`` if well-formed, else a new one) and echoes it."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.request_id = request_id_of(req) or uuid.uuid4().hex
        req.context.caller = None
        req.context.rate_limit = None

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        request_id = getattr(req.context, "request_id", None)
        if request_id:
            resp.set_header("X-Request-Id", request_id)


class SecurityHeaders:
    """Headers for an API that serves JSON only: no sniffing, no framing, no caching."""

    def __init__(self, *, hsts: bool) -> None:
        self._hsts = hsts

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("X-Frame-Options", "DENY")
        resp.set_header("Referrer-Policy", "no-referrer")
        resp.set_header("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
        resp.set_header("Cross-Origin-Resource-Policy", "same-origin")
        resp.set_header("Permissions-Policy", "interest-cohort=()")
        if resp.get_header("Cache-Control") is None:
            resp.set_header("Cache-Control", "no-store")
        if self._hsts:
            resp.set_header("Strict-Transport-Security", "max-age=63072000; includeSubDomains")


class AuthMiddleware:
    """Reads the caller from ``Authorization``; the resource decides whether one is needed."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        header = req.get_header("Authorization")
        req.context.client_ip = client_ip(req, self._services.settings)
        if not header or resource is None:
            return
        try:
            req.context.caller = self._authenticate(header)
        except (InvalidAccessTokenError, InvalidApiKeyError):
            # Count the failure before refusing it: a flood of bad tokens is still limited.
            _hit(self._services, req, API_UNAUTHENTICATED)
            raise

    def _authenticate(self, header: str) -> Caller:
        scheme, _, value = header.strip().partition(" ")
        if not value and scheme.startswith(API_KEY_PREFIX):
            principal = self._services.api_keys.verify(scheme)
            return Caller(user_id=principal.user_id, kind="api_key", api_key=principal)
        if scheme.lower() == "bearer" and value.strip():
            token = value.strip()
            if token.startswith(API_KEY_PREFIX):
                # KEY-4: keys travel without "Bearer", so a key can never pass as a JWT.
                raise InvalidApiKeyError(reason="bearer_api_key")
            claims = self._services.verifier.verify(token)
            return Caller(user_id=claims.subject, kind="user", claims=claims)
        raise InvalidAccessTokenError(reason="malformed_header")


def _hit(services: Services, req: falcon.Request, policy: str) -> None:
    status = services.limiter.hit(policy, client_key(req.context.client_ip))
    req.context.rate_limit = status


class RateLimitMiddleware:
    """One hit per request, before the resource runs (RL-5); headers on every answer (RL-3)."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        if resource is None or getattr(req.context, "rate_limit", None) is not None:
            return
        named: dict[str, str] = getattr(resource, "rate_limits", {})
        policy = named.get(req.method)
        if policy is None:
            authenticated = getattr(req.context, "caller", None) is not None
            policy = API_AUTHENTICATED if authenticated else API_UNAUTHENTICATED
        _hit(self._services, req, policy)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        status = getattr(req.context, "rate_limit", None)
        if status is not None and not status.degraded:
            for name, value in rate_limit_headers(status).items():
                resp.set_header(name, value)
