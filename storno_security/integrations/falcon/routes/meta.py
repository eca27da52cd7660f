"""The API's public documents: the JWKS of its access tokens and its OpenAPI description."""

from __future__ import annotations

from typing import Any

from storno_security.integrations.falcon.openapi import build_document, obj, paths_of
from storno_security.integrations.falcon.routing import Body, Ctx, Routes

__all__ = ["routes"]

routes = Routes()

_JWK = obj({"kty": {"type": "string"}, "kid": {"type": "string"}}, required=("kty", "kid"))


@routes.get(
    "/.well-known/jwks.json",
    summary="Public keys for access tokens (JWKS)",
    tag="meta",
    auth="none",
    responses={200: obj({"keys": {"type": "array", "items": _JWK}}, required=("keys",))},
)
def jwks(ctx: Ctx[Any], body: Body) -> None:
    ctx.json(ctx.kit.issuer.jwks())
    ctx.resp.set_header("Cache-Control", "public, max-age=300")


@routes.get(
    "/openapi.json",
    summary="This document",
    tag="meta",
    auth="none",
    responses={200: {"type": "object"}},
)
def openapi(ctx: Ctx[Any], body: Body) -> None:
    document = getattr(ctx.api, "document", None)
    if document is None:
        options = ctx.api.options
        document = build_document(
            paths_of(ctx.api.routes), server_url=options.public_url.rstrip("/"), title=options.title
        )
        ctx.api.document = document
    ctx.json(document)
    ctx.resp.set_header("Cache-Control", "public, max-age=300")
