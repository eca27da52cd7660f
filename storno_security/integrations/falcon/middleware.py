"""The one middleware: request id and client address, the request context of security events,
authentication by the kit, one rate-limit hit before the handler (RL-5), the route's credential
rule, and the response headers (RL-3, security headers).

A request with a bad credential is counted against the unauthenticated bucket before it is
refused, so invalid tokens cannot be tried unmetered. ``/health`` is never rate-limited (a
liveness probe must not be refused for being regular).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import falcon

from storno_security.errors import InvalidAccessTokenError, InvalidApiKeyError
from storno_security.events import enter_request_context, leave_request_context
from storno_security.integrations._common import (
    TrustedProxies,
    authentication_required,
    keys_refused,
    limit_key,
    request_id_from,
)
from storno_security.integrations.falcon import observe
from storno_security.integrations.http import rate_limit_headers
from storno_security.ratelimit import API_AUTHENTICATED, API_UNAUTHENTICATED

if TYPE_CHECKING:
    from storno_security.integrations.falcon.routing import Api

__all__ = ["Middleware"]


_SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Permissions-Policy", "interest-cohort=()"),
)


class Middleware:
    """Everything around a handler, in one pass."""

    def __init__(self, api: Api[Any]) -> None:
        self._kit = api.kit
        self._proxies = TrustedProxies(str(n) for n in api.options.trusted_proxies)
        self._hsts = api.options.public_url.startswith("https://")
        self._observer = api.observer

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        ctx = req.context
        observe.request_started(req)
        ctx.request_id = request_id_from(req.get_header("X-Request-Id"))
        ctx.caller = None
        ctx.rate_limit = None
        ctx.client_ip = self._proxies.client_ip(
            req.remote_addr or "0.0.0.0",  # noqa: S104 - only a rate-limit identifier
            req.get_header("X-Forwarded-For"),
        )
        ctx.events_token = enter_request_context(
            ip=ctx.client_ip, user_agent=req.user_agent, request_id=ctx.request_id
        )

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        route = resource.route(req.method) if resource is not None else None
        if route is None or route.limit == "":
            return  # no route (404/405), or an unmetered probe: no credential, no count
        header = req.get_header("Authorization")
        if header:
            try:
                req.context.caller = self._kit.authenticate(header.strip())
            except (InvalidAccessTokenError, InvalidApiKeyError):
                self._hit(req, API_UNAUTHENTICATED)
                raise
        caller = req.context.caller
        if route.limit != "":
            policy = route.limit or (API_AUTHENTICATED if caller else API_UNAUTHENTICATED)
            self._hit(req, policy)
        if route.auth != "none" and caller is None:
            raise authentication_required()
        if route.auth == "user" and caller is not None and caller.is_api_key:
            raise keys_refused()

    def _hit(self, req: falcon.Request, policy: str) -> None:
        req.context.rate_limit = self._kit.limiter.hit(policy, limit_key(req.context.client_ip))

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        ctx = req.context
        status = getattr(ctx, "rate_limit", None)
        if status is not None and not status.degraded:
            for name, value in rate_limit_headers(status).items():
                resp.set_header(name, value)
        request_id = getattr(ctx, "request_id", None)
        if request_id:
            resp.set_header("X-Request-Id", request_id)
        for name, value in _SECURITY_HEADERS:
            resp.set_header(name, value)
        if resp.get_header("Cache-Control") is None:
            resp.set_header("Cache-Control", "no-store")
        if self._hsts:
            resp.set_header("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
        token = getattr(ctx, "events_token", None)
        if token is not None:
            leave_request_context(token)
            ctx.events_token = None
        if self._observer is not None:
            observe.request_finished(self._observer, req, resp)
