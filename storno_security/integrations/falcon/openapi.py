"""The OpenAPI 3.1 document, assembled from the routes (:class:`~.routing.Route`):
the request body of each operation is the very schema the route validates with.

Every operation has the same shape: the JSON request body schema, success responses, the
security it needs, the tenancy headers it reads, and the shared error response (every error is
``{"error", "code", "request_id"}``, SRV-2) as the ``default``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storno_security.integrations.falcon.routing import Route

__all__ = [
    "ERROR_REF",
    "build_document",
    "json_body",
    "obj",
    "operation",
    "paths_of",
]

ERROR_REF = {"$ref": "#/components/schemas/Error"}

_RATE_HEADERS = {
    "RateLimit-Limit": {"schema": {"type": "string"}},
    "RateLimit-Remaining": {"schema": {"type": "string"}},
    "RateLimit-Reset": {"schema": {"type": "string"}},
}


def obj(
    properties: dict[str, Any],
    *,
    required: tuple[str, ...] | list[str] = (),
    additional: bool = True,
) -> dict[str, Any]:
    """A JSON object schema."""
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if not additional:
        schema["additionalProperties"] = False
    return schema


def json_body(schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def operation(route: Route) -> dict[str, Any]:
    """The OpenAPI operation of a route: its summary, the JSON body schema it validates with,
    its responses, the credential it needs and the tenancy headers it reads."""
    op: dict[str, Any] = {"summary": route.summary, "tags": [route.tag]}
    if route.description:
        op["description"] = route.description
    params = list(route.parameters)
    for name in re.findall(r"{([a-z_]+)}", route.path):
        params.append({"name": name, "in": "path", "required": True, "schema": {"type": "string"}})
    if route.organization:
        params.append({"$ref": "#/components/parameters/XOrganization"})
    if route.company:
        params.append({"$ref": "#/components/parameters/XCompany"})
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = json_body(route.body, required=route.body_required)
    if route.auth == "none":
        op["security"] = []
    elif route.auth == "user":
        op["security"] = [{"bearerAuth": []}]
    else:
        op["security"] = [{"bearerAuth": []}, {"apiKey": []}]
    out: dict[str, Any] = {}
    for status, schema in route.responses.items():
        entry: dict[str, Any] = {"description": _DESCRIPTIONS.get(status, "Success")}
        if schema is not None:
            entry["content"] = {"application/json": {"schema": schema}}
        if route.limit != "":
            entry["headers"] = copy.deepcopy(_RATE_HEADERS)
        out[str(status)] = entry
    out["default"] = {"$ref": "#/components/responses/Error"}
    op["responses"] = out
    return op


def paths_of(routes: Iterable[Route]) -> dict[str, Any]:
    """The ``paths`` object of every route."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = operation(route)
    return paths


_DESCRIPTIONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No content"}


def build_document(
    paths: dict[str, Any], *, server_url: str, title: str = "storno-security API"
) -> dict[str, Any]:
    """The whole document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": "0.1.0",
            "description": (
                "The storno-security library over HTTP. Errors are "
                '`{"error": ..., "code": ...}`; rate-limited answers carry `RateLimit-*` '
                "headers and, on 429, `Retry-After`."
            ),
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "An API key sent as `Authorization: af_...` (no Bearer).",
                },
            },
            "parameters": {
                "XCompany": {
                    "name": "X-Company",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string", "format": "uuid"},
                    "description": "The company the request acts on (RBAC-3).",
                },
                "XOrganization": {
                    "name": "X-Organization",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "format": "uuid"},
                    "description": "The organization; default: the caller's default membership.",
                },
            },
            "schemas": {
                "Error": obj(
                    {
                        "error": {"type": "string"},
                        "code": {"type": "string"},
                        "request_id": {"type": ["string", "null"]},
                    },
                    required=("error", "code"),
                ),
            },
            "responses": {
                "Error": {
                    "description": "An error (4xx or 5xx)",
                    "content": {"application/json": {"schema": ERROR_REF}},
                },
            },
        },
    }
