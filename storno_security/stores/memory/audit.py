"""In-memory audit store: thread-safe, per process, for tests and single-process apps.

:class:`MemoryAuditStore` implements :class:`~storno_security.audit.AuditStore`. Every method
runs under one lock, so a pseudonymisation is atomic among the threads of one process. Events are
lost on restart: use the SQL store in production.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from datetime import datetime

import attrs

from storno_security.audit.events import SecurityEvent, SecurityEventType
from storno_security.audit.storage import AuditCursor, _check_limit
from storno_security.clock import ensure_aware_utc
from storno_security.errors import StoreError
from storno_security.stores.memory._base import _delete_where

__all__ = ["MemoryAuditStore"]


class MemoryAuditStore:
    """Security events in a dictionary guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, SecurityEvent] = {}

    def __repr__(self) -> str:
        return "MemoryAuditStore()"

    def record(self, event: SecurityEvent) -> None:
        """See :meth:`AuditSink.record`."""
        if not isinstance(event, SecurityEvent):
            raise TypeError("event must be a SecurityEvent")
        with self._lock:
            if event.event_id in self._events:
                raise StoreError("the event id exists already", reason="duplicate")
            self._events[event.event_id] = event

    def query(
        self,
        *,
        organization_id: str | None,
        since: datetime | None = None,
        until: datetime | None = None,
        types: Collection[SecurityEventType] | None = None,
        actor_id: str | None = None,
        cursor: AuditCursor | None = None,
        limit: int = 100,
    ) -> list[SecurityEvent]:
        """See :meth:`AuditStore.query`."""
        limit = _check_limit(limit)
        since = None if since is None else ensure_aware_utc(since)
        until = None if until is None else ensure_aware_utc(until)
        wanted = None if types is None else frozenset(SecurityEventType(t) for t in types)
        position = None
        if cursor is not None:
            position = (ensure_aware_utc(cursor.at), cursor.event_id)
        with self._lock:
            events = list(self._events.values())
        found = [
            e
            for e in events
            if (organization_id is None or e.organization_id == organization_id)
            and (since is None or e.at >= since)
            and (until is None or e.at < until)
            and (wanted is None or e.type in wanted)
            and (actor_id is None or e.actor_id == actor_id)
            and (position is None or (e.at, e.event_id) < position)
        ]
        found.sort(key=lambda e: (e.at, e.event_id), reverse=True)
        return found[:limit]

    def purge(self, *, before: datetime) -> int:
        """See :meth:`AuditStore.purge`."""
        before = ensure_aware_utc(before)
        return _delete_where(self._lock, self._events, lambda e: e.at < before)

    def pseudonymise(self, user_id: str, *, pseudonym: str) -> int:
        """See :meth:`AuditStore.pseudonymise`."""
        if not isinstance(user_id, str) or not isinstance(pseudonym, str):
            raise TypeError("user_id and pseudonym must be str")
        if not user_id or not pseudonym:
            raise ValueError("user_id and pseudonym must not be empty")
        with self._lock:
            changed: dict[str, SecurityEvent] = {}
            for key, event in self._events.items():
                if event.actor_id != user_id and event.subject_id != user_id:
                    continue
                new = event
                if event.actor_id == user_id:
                    new = attrs.evolve(new, actor_id=pseudonym, ip=None, user_agent=None)
                if event.subject_id == user_id:
                    new = attrs.evolve(new, subject_id=pseudonym)
                changed[key] = new  # every record is checked before any is replaced
            self._events.update(changed)
            return len(changed)
