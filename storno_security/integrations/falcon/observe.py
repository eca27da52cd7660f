"""Falcon's side of :mod:`storno_security.integrations.observability`: the request's start,
its record (route template, status, principal) and its error, and ``GET /metrics``.

The middleware calls :func:`request_started` and :func:`request_finished`; an application that
wants ``/metrics`` adds :data:`routes` to its route modules and gives its :class:`Api` an
``observer`` with metrics.
"""

from __future__ import annotations

import time
from typing import Any

import falcon

from storno_security.integrations._common import TrustedProxies
from storno_security.integrations.falcon.routing import Body, Ctx, Routes
from storno_security.integrations.observability import Observer, Principal, RequestRecord

__all__ = ["request_finished", "request_started", "routes"]

_FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


def request_started(req: falcon.Request) -> None:
    req.context.started = time.perf_counter()


def request_finished(observer: Observer, req: falcon.Request, resp: falcon.Response) -> None:
    ctx = req.context
    started = getattr(ctx, "started", None)
    caller = getattr(ctx, "caller", None)
    principal: Principal = "anonymous"
    if caller is not None:
        principal = "api_key" if caller.is_api_key else "user"
    record = RequestRecord(
        request_id=getattr(ctx, "request_id", None),
        route=req.uri_template,
        method=req.method,
        status=int(resp.status_code),
        duration=time.perf_counter() - started if started is not None else 0.0,
        principal=principal,
    )
    observer.request_finished(record, error=getattr(ctx, "error", None))


routes = Routes()


@routes.get(
    "/metrics",
    summary="Prometheus metrics (only to the networks of STORNO_METRICS; 404 elsewhere)",
    tag="meta",
    auth="none",
    limit="",
    responses={200: None},
)
def metrics(ctx: Ctx[Any], body: Body) -> None:
    observer: Observer | None = getattr(ctx.api, "observer", None)
    req = ctx.req
    forwarded = any(req.get_header(name) is not None for name in _FORWARDING_HEADERS)
    # an unmetered route: the middleware resolved no client address, so it is resolved here
    proxies = TrustedProxies(str(n) for n in ctx.api.options.trusted_proxies)
    peer = req.remote_addr or "0.0.0.0"  # noqa: S104 - an address to check, nothing is bound
    client_ip = proxies.client_ip(peer, req.get_header("X-Forwarded-For"))
    if (
        observer is None
        or observer.metrics is None
        or not observer.access.allows(client_ip, peer=req.remote_addr, forwarded=forwarded)
    ):
        raise falcon.HTTPNotFound()  # the same answer as a path that does not exist
    ctx.resp.content_type = observer.metrics.content_type
    ctx.resp.data = observer.metrics.render()
