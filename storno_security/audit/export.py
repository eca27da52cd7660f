"""Security events as JSON: one object per line (JSON Lines), and back."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from storno_security.audit.events import SecurityEvent

__all__ = ["event_from_dict", "event_from_json", "event_to_dict", "event_to_json", "to_jsonl"]

_FIELDS = (
    "event_id",
    "type",
    "at",
    "outcome",
    "actor_id",
    "subject_id",
    "organization_id",
    "company_id",
    "ip",
    "user_agent",
    "details",
)


def event_to_dict(event: SecurityEvent) -> dict[str, Any]:
    """The event as JSON-ready values: enums as their names' values, the time as ISO 8601 UTC."""
    return {
        "event_id": event.event_id,
        "type": event.type.value,
        "at": event.at.isoformat(),
        "outcome": event.outcome.value,
        "actor_id": event.actor_id,
        "subject_id": event.subject_id,
        "organization_id": event.organization_id,
        "company_id": event.company_id,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "details": dict(event.details),
    }


def event_from_dict(data: object) -> SecurityEvent:
    """Rebuild an event from :func:`event_to_dict` output; every field is checked again.

    Raises:
        ValueError: a field is missing, extra, or invalid (see :class:`SecurityEvent`).
    """
    if not isinstance(data, dict) or set(data) != set(_FIELDS):
        raise ValueError("not a security event object")
    at = data["at"]
    if not isinstance(at, str):
        raise ValueError("at must be an ISO 8601 string")
    try:
        when = datetime.fromisoformat(at)
        return SecurityEvent(
            event_id=data["event_id"],
            type=data["type"],
            at=when,
            outcome=data["outcome"],
            actor_id=data["actor_id"],
            subject_id=data["subject_id"],
            organization_id=data["organization_id"],
            company_id=data["company_id"],
            ip=data["ip"],
            user_agent=data["user_agent"],
            details=data["details"],
        )
    except TypeError as exc:
        raise ValueError("a field has the wrong type") from exc


def event_to_json(event: SecurityEvent) -> str:
    """One compact JSON object, keys in a fixed order, no trailing newline."""
    return json.dumps(event_to_dict(event), ensure_ascii=True, separators=(",", ":"))


def event_from_json(line: str) -> SecurityEvent:
    """Parse one line of :func:`to_jsonl` output.

    Raises:
        ValueError: not JSON, or not a valid event.
    """
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError("not JSON") from exc
    return event_from_dict(data)


def to_jsonl(events: Iterable[SecurityEvent]) -> Iterator[str]:
    """Yield each event as one line of JSON Lines (ending in ``\\n``)."""
    for event in events:
        yield event_to_json(event) + "\n"
