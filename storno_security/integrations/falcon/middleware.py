"""The one middleware: request id and client address, the request context of security events,
authentication by the kit, one rate-limit hit before the handler (RL-5), the route's credential
rule, and the response headers (RL-3, security headers).

A request with a bad credential is counted against the unauthenticated bucket before it is
refused, so invalid tokens cannot be tried unmetered. ``/health`` is never rate-limited (a
liveness probe must not be refused for being regular).
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import TYPE_CHECKING, Any

import falcon

from storno_security.errors import InvalidAccessTokenError, InvalidApiKeyError
from storno_security.events import enter_request_context, leave_request_context
from storno_security.integrations.falcon.errors import ApiError
from storno_security.integrations.http import rate_limit_headers
from storno_security.ratelimit import API_AUTHENTICATED, API_UNAUTHENTICATED, client_key

if TYPE_CHECKING:
    from storno_security.integrations.falcon.routing import Api

__all__ = ["Middleware", "client_ip"]

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

_SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Permissions-Policy", "interest-cohort=()"),
)


def client_ip(req: falcon.Request, trusted_proxies: tuple[Any, ...]) -> str:
    """The client address: the peer, or the last untrusted hop of ``X-Forwarded-For``.

    ``X-Forwarded-For`` is read only when the peer is a trusted proxy
    (``trusted_proxies``), and then from the right: the first address that is not a
    trusted proxy is the client. A client cannot choose its rate-limit bucket by sending the
    header itself.
    """
    peer = req.remote_addr or "0.0.0.0"  # noqa: S104 - only a rate-limit identifier
    if not trusted_proxies or not _trusted(peer, trusted_proxies):
        return peer
    forwarded = req.get_header("X-Forwarded-For") or ""
    hops = [part.strip() for part in forwarded.split(",") if part.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer
        if not _trusted(hop, trusted_proxies):
            return hop
    return hops[0] if hops else peer


def _trusted(address: str, trusted_proxies: tuple[Any, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted_proxies)


class Middleware:
    """Everything around a handler, in one pass."""

    def __init__(self, api: Api[Any]) -> None:
        self._kit = api.kit
        self._proxies = api.options.trusted_proxies
        self._hsts = api.options.public_url.startswith("https://")

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        given = req.get_header("X-Request-Id")
        ctx = req.context
        ctx.request_id = given if given and _REQUEST_ID.fullmatch(given) else os.urandom(16).hex()
        ctx.caller = None
        ctx.rate_limit = None
        ctx.client_ip = client_ip(req, self._proxies)
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
            raise ApiError(
                401,
                "authentication_required",
                "Authentication required.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if route.auth == "user" and caller is not None and caller.is_api_key:
            raise ApiError(403, "forbidden", "API keys cannot be used for this action.")

    def _hit(self, req: falcon.Request, policy: str) -> None:
        req.context.rate_limit = self._kit.limiter.hit(policy, client_key(req.context.client_ip))

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
