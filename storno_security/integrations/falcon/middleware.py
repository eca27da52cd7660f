"""The one middleware: request id and client address, the request context of security events,
authentication by the kit, one rate-limit hit before the handler (RL-5), the route's credential
rule, and the response headers (RL-3, security headers; a page's own ``Content-Security-Policy``,
``resp.context.page_csp``, in place of the API's ``default-src 'none'``).

A request with a bad credential is counted against the unauthenticated bucket before it is
refused, so invalid tokens cannot be tried unmetered. An unmetered probe (``/health``,
``/ready``) is never rate-limited (a liveness probe must not be refused for being regular) and
costs no more than its request id and headers: no client address, no events context.

Hook points, for what other modules add around every request (CORS, access logs and metrics,
load shedding), so that they need no middleware of their own:

* :attr:`Middleware.on_request`: called first, before routing, as ``hook(req, resp)``; one
  may raise an error to answer at once (a 503 when shedding load) or stash what it needs in
  ``req.context`` (a start time);
* :attr:`Middleware.on_response`: called last, after this middleware's headers, as
  ``hook(req, resp, req_succeeded)``, also for error answers.

The per-request work is kept to what differs between requests: the fixed headers are one
precomputed list, the client address and rate-limit key of a (peer, ``X-Forwarded-For``) pair
are remembered (bounded), and a request without a valid ``X-Request-Id`` gets a process prefix
and a counter instead of fresh randomness (an id, not a secret).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import falcon

from storno_security.errors import InvalidAccessTokenError, InvalidApiKeyError
from storno_security.events import enter_request_context, leave_request_context
from storno_security.integrations._common import (
    ClientAddresses,
    RequestIds,
    TrustedProxies,
    authentication_required,
    keys_refused,
)
from storno_security.integrations.falcon import observe
from storno_security.integrations.http import rate_limit_headers
from storno_security.ratelimit import API_AUTHENTICATED, API_UNAUTHENTICATED

if TYPE_CHECKING:
    from storno_security.integrations.falcon.routing import Api

__all__ = ["Middleware", "RequestHook", "ResponseHook"]

RequestHook = Callable[[falcon.Request, falcon.Response], None]
ResponseHook = Callable[[falcon.Request, falcon.Response, bool], None]

_SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)
_HSTS = ("Strict-Transport-Security", "max-age=63072000; includeSubDomains")


class Middleware:
    """Everything around a handler, in one pass.

    Args:
        api: the kit and the options (trusted proxies, public URL).
        on_request: hooks run first on every request (see the module).
        on_response: hooks run last on every response (see the module).
    """

    def __init__(
        self,
        api: Api[Any],
        *,
        on_request: tuple[RequestHook, ...] | list[RequestHook] = (),
        on_response: tuple[ResponseHook, ...] | list[ResponseHook] = (),
    ) -> None:
        self._kit = api.kit
        self._limiter = api.kit.limiter
        self._clients = ClientAddresses(TrustedProxies(str(n) for n in api.options.trusted_proxies))
        self._request_ids = RequestIds()
        headers = list(_SECURITY_HEADERS)
        if api.options.public_url.startswith("https://"):
            headers.append(_HSTS)
        self._headers = headers
        self._observer = api.observer
        #: Hooks run first on every request: ``hook(req, resp)``.
        self.on_request: list[RequestHook] = list(on_request)
        #: Hooks run last on every response: ``hook(req, resp, req_succeeded)``.
        self.on_response: list[ResponseHook] = list(on_response)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        ctx = req.context
        observe.request_started(req)
        ctx.request_id = self._request_ids(req.env.get("HTTP_X_REQUEST_ID"))
        ctx.caller = None
        ctx.rate_limit = None
        ctx.events_token = None
        for hook in self.on_request:
            hook(req, resp)

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        route = resource.route(req.method) if resource is not None else None
        if route is None or route.limit == "":
            return  # no route (404/405), or an unmetered probe: no credential, no count
        ctx = req.context
        env = req.env  # the WSGI headers, read directly (what get_header() would look up)
        ctx.client_ip, limit_key = self._clients.resolve(
            req.remote_addr or "0.0.0.0",  # noqa: S104 - only a rate-limit identifier
            env.get("HTTP_X_FORWARDED_FOR"),
        )
        ctx.events_token = enter_request_context(
            ip=ctx.client_ip, user_agent=env.get("HTTP_USER_AGENT"), request_id=ctx.request_id
        )
        header = env.get("HTTP_AUTHORIZATION")
        if header:
            try:
                ctx.caller = self._kit.authenticate(header.strip(), overview=route.overview)
            except (InvalidAccessTokenError, InvalidApiKeyError):
                ctx.rate_limit = self._limiter.hit(API_UNAUTHENTICATED, limit_key)
                raise
        caller = ctx.caller
        policy = route.limit or (API_AUTHENTICATED if caller else API_UNAUTHENTICATED)
        ctx.rate_limit = self._limiter.hit(policy, limit_key)
        if route.auth != "none" and caller is None:
            raise authentication_required()
        if route.auth == "user" and caller is not None and caller.is_api_key:
            raise keys_refused()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        ctx = req.context
        status = getattr(ctx, "rate_limit", None)
        headers = self._headers
        if status is not None and not status.degraded:
            headers = [*headers, *rate_limit_headers(status).items()]
        request_id = getattr(ctx, "request_id", None)
        if request_id:
            headers = [*headers, ("X-Request-Id", request_id)]
        resp.set_headers(headers)
        page_csp = getattr(resp.context, "page_csp", None)
        if page_csp:  # a page a resource serves (StaticFile): its own scripts, not 'none'
            resp.set_header("Content-Security-Policy", page_csp)
        if resp.get_header("Cache-Control") is None:
            resp.set_header("Cache-Control", "no-store")
        token = getattr(ctx, "events_token", None)
        if token is not None:
            leave_request_context(token)
            ctx.events_token = None
        for hook in self.on_response:
            hook(req, resp, req_succeeded)
        if self._observer is not None:
            observe.request_finished(self._observer, req, resp)
