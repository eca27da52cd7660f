"""Liveness, readiness, the JWKS and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from reference_server.openapi import build_document, obj, paths_of
from reference_server.web import Body, Ctx, Routes

__all__ = ["routes"]

routes = Routes()

_JWK = obj({"kty": {"type": "string"}, "kid": {"type": "string"}}, required=("kty", "kid"))
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
def health(ctx: Ctx, body: Body) -> None:
    ctx.json({"status": "ok", "checks": {}})


@routes.get(
    "/ready",
    summary="Readiness: every dependency answers (503 naming the one that does not)",
    tag="meta",
    auth="none",
    limit="",
    responses={200: _CHECKS, 503: _CHECKS},
)
def ready(ctx: Ctx, body: Body) -> None:
    checks = ctx.server.readiness()
    healthy = all(value == "ok" for value in checks.values())
    ctx.json(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status=200 if healthy else 503,
    )


@routes.get(
    "/.well-known/jwks.json",
    summary="Public keys for access tokens (JWKS)",
    tag="meta",
    auth="none",
    responses={200: obj({"keys": {"type": "array", "items": _JWK}}, required=("keys",))},
)
def jwks(ctx: Ctx, body: Body) -> None:
    ctx.json(ctx.kit.issuer.jwks())
    ctx.resp.set_header("Cache-Control", "public, max-age=300")


_DOCUMENT: dict[str, Any] = {}


@routes.get(
    "/openapi.json",
    summary="This document",
    tag="meta",
    auth="none",
    responses={200: {"type": "object"}},
)
def openapi(ctx: Ctx, body: Body) -> None:
    if not _DOCUMENT:
        from reference_server.app import all_routes

        _DOCUMENT.update(
            build_document(
                paths_of(all_routes()), server_url=ctx.server.settings.public_url.rstrip("/")
            )
        )
    ctx.json(_DOCUMENT)
    ctx.resp.set_header("Cache-Control", "public, max-age=300")
