"""The organization's audit log (ACC-3): security events, newest first, with filters and an
opaque cursor, and the JSON Lines export.

``audit.view``, always the caller's organization: naming another one in ``X-Organization``
answers as an unknown one (404, RBAC-3).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from reference_server.wiring import Server
from storno_security.audit import AuditCursor, SecurityEventType, event_to_dict
from storno_security.events import SecurityEvent
from storno_security.integrations.falcon.openapi import obj
from storno_security.integrations.falcon.routing import Body, Ctx, Routes, bad_request, iso
from storno_security.integrations.falcon.schemas import TIME
from storno_security.rbac import Permission

__all__ = ["routes"]

routes = Routes()

_DEFAULT_PAGE = 50
_MAX_PAGE = 200
_EVENT = obj(
    {
        "event_id": {"type": "string"},
        "type": {"type": "string"},
        "at": TIME,
        "outcome": {"enum": ["success", "failure"]},
        "actor_id": {"type": ["string", "null"]},
        "subject_id": {"type": ["string", "null"]},
        "organization_id": {"type": ["string", "null"]},
        "company_id": {"type": ["string", "null"]},
        "ip": {"type": ["string", "null"]},
        "user_agent": {"type": ["string", "null"]},
        "details": {"type": "object"},
    },
    required=("event_id", "type", "at", "outcome"),
)


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_FILTERS = (
    _query("since", TIME, "Only events at or after this time."),
    _query("until", TIME, "Only events before this time."),
    _query("actor", {"type": "string"}, "Only events of this actor (a user id)."),
)


def _in_utc(value: datetime) -> datetime | None:
    """``value`` in UTC, or ``None`` when that falls outside years 1..9999 (``0001-01-01T00:00
    +14:00`` is valid with its offset, not in UTC)."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        return None


def _time(ctx: Ctx[Server], name: str) -> datetime | None:
    raw = ctx.param(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        bad_request(f"'{name}' must be an ISO 8601 time with a UTC offset.", field=name)
    if value.tzinfo is None:
        bad_request(f"'{name}' must be an ISO 8601 time with a UTC offset.", field=name)
    utc = _in_utc(value)
    if utc is None:
        bad_request(f"'{name}' is outside the years 1 to 9999 in UTC.", field=name)
    return utc


def _actor(ctx: Ctx[Server]) -> str | None:
    actor = ctx.param("actor", max_length=255)
    if actor == "":
        bad_request("'actor' must be 1 to 255 characters.", field="actor")
    return actor


def _types(ctx: Ctx[Server]) -> list[SecurityEventType] | None:
    raw = ctx.req.get_param_as_list("type")
    if not raw:
        return None
    found: list[SecurityEventType] = []
    for item in (part.strip() for value in raw for part in value.split(",")):
        try:
            found.append(SecurityEventType(item))
        except ValueError:
            bad_request(f"unknown event type {item[:64]!r}", field="type")
    return found


def _limit(ctx: Ctx[Server]) -> int:
    raw = ctx.param("limit", max_length=8)
    if raw is None:
        return _DEFAULT_PAGE
    if not raw.isdigit() or not 1 <= int(raw) <= _MAX_PAGE:
        bad_request(f"'limit' must be an integer from 1 to {_MAX_PAGE}.", field="limit")
    return int(raw)


def _encode_cursor(cursor: AuditCursor) -> str:
    raw = json.dumps({"at": cursor.at.isoformat(), "id": cursor.event_id}).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _cursor(ctx: Ctx[Server]) -> AuditCursor | None:
    raw = ctx.param("cursor", max_length=512)
    if raw is None:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        at = datetime.fromisoformat(data["at"])
        event_id = data["id"]
        if at.tzinfo is None or not isinstance(event_id, str) or not 1 <= len(event_id) <= 64:
            raise ValueError
        utc = _in_utc(at)
        if utc is None:
            raise ValueError
    except (ValueError, TypeError, KeyError, binascii.Error):
        bad_request("'cursor' is not a cursor this server gave.", field="cursor")
    return AuditCursor(utc, event_id)


def _event(event: SecurityEvent) -> dict[str, Any]:
    data = event_to_dict(event)
    data["at"] = iso(event.at)
    return data


@routes.get(
    "/api/v1/audit-events",
    summary="The organization's security events, newest first",
    tag="audit",
    organization=True,
    parameters=(
        *_FILTERS,
        _query(
            "type",
            {"type": "array", "items": {"enum": [t.value for t in SecurityEventType]}},
            "Only these event types (repeat or comma-separate).",
        ),
        _query("cursor", {"type": "string"}, "The next_cursor of the previous page."),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": _MAX_PAGE}, "Page size."),
    ),
    responses={
        200: obj(
            {
                "events": {"type": "array", "items": _EVENT},
                "next_cursor": {"type": ["string", "null"]},
            },
            required=("events", "next_cursor"),
        )
    },
)
def events(ctx: Ctx[Server], body: Body) -> None:
    auth = ctx.authorize(Permission.AUDIT_VIEW)
    limit = _limit(ctx)
    page = ctx.kit.stores.audit.query(
        organization_id=auth.organization_id,
        since=_time(ctx, "since"),
        until=_time(ctx, "until"),
        types=_types(ctx),
        actor_id=_actor(ctx),
        cursor=_cursor(ctx),
        limit=limit + 1,
    )
    more = len(page) > limit
    page = page[:limit]
    ctx.json(
        {
            "events": [_event(event) for event in page],
            "next_cursor": _encode_cursor(AuditCursor.after(page[-1])) if more else None,
        }
    )


@routes.get(
    "/api/v1/audit-events/export",
    summary="Export the organization's audit log as JSON Lines",
    tag="audit",
    organization=True,
    parameters=_FILTERS,
    responses={200: None},
)
def export(ctx: Ctx[Server], body: Body) -> None:
    auth = ctx.authorize(Permission.AUDIT_VIEW)
    lines = list(
        ctx.kit.audit.export_jsonl(
            organization_id=auth.organization_id,
            since=_time(ctx, "since"),
            until=_time(ctx, "until"),
            actor_id=_actor(ctx),
        )
    )
    ctx.kit.emit(
        SecurityEventType.DATA_EXPORTED,
        actor_id=auth.principal.user_id,
        organization_id=auth.organization_id,
        details={"format": "jsonl", "record_count": len(lines), "method": "audit_log"},
    )
    ctx.resp.content_type = "application/x-ndjson"
    ctx.resp.set_header("Content-Disposition", 'attachment; filename="audit-events.jsonl"')
    ctx.resp.text = "".join(lines)
