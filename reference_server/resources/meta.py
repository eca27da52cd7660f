"""Health, JWKS and the OpenAPI document."""

from __future__ import annotations

from typing import Any

import falcon
import sqlalchemy as sa

from reference_server.http import Router
from reference_server.openapi import build_document, obj, operation
from reference_server.services import Services

__all__ = ["OPENAPI_PATHS", "register"]


class Health:
    """Liveness and readiness: the database (and Redis, when used) answer."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        checks = {"database": "ok"}
        try:
            with self._services.db.read() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception:
            checks["database"] = "unavailable"
        if self._services.redis is not None:
            try:
                self._services.redis.ping()
                checks["redis"] = "ok"
            except Exception:
                checks["redis"] = "unavailable"
        healthy = all(value == "ok" for value in checks.values())
        resp.status = falcon.HTTP_200 if healthy else falcon.HTTP_503
        resp.media = {"status": "ok" if healthy else "unavailable", "checks": checks}


class Jwks:
    """The public keys that verify access tokens (JWT-3)."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self._services.access_tokens.jwks()
        resp.set_header("Cache-Control", "public, max-age=300")


class OpenApi:
    def __init__(self, services: Services) -> None:
        self._services = services
        self._document: dict[str, Any] | None = None

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._document is None:
            from reference_server.resources import MODULES

            paths: dict[str, Any] = {}
            for module in MODULES:
                for path, item in module.OPENAPI_PATHS.items():
                    paths.setdefault(path, {}).update(item)
            self._document = build_document(
                paths, server_url=self._services.settings.public_url.rstrip("/")
            )
        resp.media = self._document
        resp.set_header("Cache-Control", "public, max-age=300")


_JWK = obj({"kty": {"type": "string"}, "kid": {"type": "string"}}, required=("kty", "kid"))

OPENAPI_PATHS: dict[str, Any] = {
    "/health": {
        "get": operation(
            "Health of the server and its stores",
            tag="meta",
            auth="none",
            responses={
                200: obj(
                    {"status": {"type": "string"}, "checks": {"type": "object"}},
                    required=("status", "checks"),
                )
            },
        )
    },
    "/.well-known/jwks.json": {
        "get": operation(
            "Public keys for access tokens (JWKS)",
            tag="meta",
            auth="none",
            responses={200: obj({"keys": {"type": "array", "items": _JWK}}, required=("keys",))},
        )
    },
    "/openapi.json": {
        "get": operation(
            "This document", tag="meta", auth="none", responses={200: {"type": "object"}}
        )
    },
}


def register(app: Router, services: Services) -> None:
    app.add_route("/health", Health(services))
    app.add_route("/.well-known/jwks.json", Jwks(services))
    app.add_route("/openapi.json", OpenApi(services))
