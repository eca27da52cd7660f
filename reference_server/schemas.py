"""The server's own schema pieces: cursor paging of its lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from reference_server.data.paging import MAX_LIMIT, Page, PageError, PageRequest
from storno_security.integrations.falcon.openapi import obj
from storno_security.integrations.falcon.routing import Ctx, bad_request
from storno_security.integrations.falcon.schemas import NULLABLE_STRING

__all__ = ["PAGE_PARAMETERS", "page_json", "page_of", "page_request"]

T = TypeVar("T")


PAGE_PARAMETERS: tuple[dict[str, Any], ...] = (
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    },
    {
        "name": "cursor",
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": "The `next_cursor` of the previous page.",
    },
)


def page_of(item: dict[str, Any]) -> dict[str, Any]:
    """A page of ``item``: ``{items, next_cursor}``."""
    return obj(
        {"items": {"type": "array", "items": item}, "next_cursor": NULLABLE_STRING},
        required=("items", "next_cursor"),
    )


def page_request(ctx: Ctx[Any]) -> PageRequest:
    """``?limit=`` and ``?cursor=`` (400 naming the parameter when malformed)."""
    try:
        return PageRequest.parse(ctx.param("limit"), ctx.param("cursor"))
    except PageError as exc:
        bad_request(str(exc), field=exc.field)


def page_json(page: Page[T], render: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    return {"items": [render(item) for item in page.items], "next_cursor": page.next_cursor}
