"""Liveness and readiness of the server."""

from __future__ import annotations

from reference_server.wiring import Server
from storno_security.integrations.falcon.openapi import obj
from storno_security.integrations.falcon.routing import Body, Ctx, Routes

__all__ = ["routes"]

routes = Routes()

_CHECKS = obj(
    {"status": {"type": "string"}, "checks": {"type": "object"}}, required=("status", "checks")
)


@routes.get(
    "/health",
    summary="Liveness: the process answers (never rate-limited, touches no dependency)",
    tag="meta",
    auth="none",
    limit="",
    responses={200: _CHECKS},
)
def health(ctx: Ctx[Server], body: Body) -> None:
    ctx.json_once(_HEALTHY)


_HEALTHY = {"status": "ok", "checks": {}}  # never changed: rendered once (Ctx.json_once)


@routes.get(
    "/ready",
    summary="Readiness: every dependency answers (503 naming the one that does not)",
    tag="meta",
    auth="none",
    limit="",
    responses={200: _CHECKS, 503: _CHECKS},
)
def ready(ctx: Ctx[Server], body: Body) -> None:
    checks = ctx.state.readiness()
    healthy = all(value == "ok" for value in checks.values())
    ctx.json(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status=200 if healthy else 503,
    )
