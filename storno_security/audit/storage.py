"""Where security events go: a one-verb sink, and a queryable store (ACC-3, ACC-4).

* :class:`AuditSink` only records (a log shipper, a SIEM forwarder, a test list).
* :class:`AuditStore` also answers queries, purges old events (retention) and pseudonymises a
  user's events (GDPR deletion). Every method is one atomic operation.

Implementations: :class:`~storno_security.stores.memory.MemoryAuditStore` and
:class:`~storno_security.stores.sql.SqlAuditStore`. Stores take times from the caller and never
read a clock.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol, runtime_checkable

import attrs

from storno_security.audit.events import SecurityEvent, SecurityEventType

__all__ = ["AuditCursor", "AuditSink", "AuditStore"]

#: The most events one query returns.
MAX_QUERY_LIMIT = 10_000


def _check_limit(limit: object) -> int:
    """``limit`` if it is an int from 1 to :data:`MAX_QUERY_LIMIT` (the stores' check).

    Raises:
        TypeError: ``limit`` is not an int (a bool is not).
        ValueError: ``limit`` is out of range.
    """
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise TypeError("limit must be an int")
    if not 1 <= limit <= MAX_QUERY_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_QUERY_LIMIT}")
    return limit


@attrs.frozen
class AuditCursor:
    """A position in the newest-first order: a query with it returns events strictly older.

    Attributes:
        at: the time of the last event seen.
        event_id: its id (ties at the same time are ordered by id, descending).
    """

    at: datetime
    event_id: str

    @classmethod
    def after(cls, event: SecurityEvent) -> AuditCursor:
        """The cursor that continues a listing after ``event``."""
        return cls(event.at, event.event_id)


@runtime_checkable
class AuditSink(Protocol):
    """Something that records security events."""

    def record(self, event: SecurityEvent) -> None:
        """Record one event.

        Raises:
            StoreError: the event was not recorded (duplicate id, backend failure).
        """
        ...


@runtime_checkable
class AuditStore(AuditSink, Protocol):
    """A sink that can be queried, purged and pseudonymised.

    Besides what each method lists, every method raises ``TypeError`` or ``ValueError`` for a
    bad argument (a wrong type, a naive time, a value no backend can hold: refused, never
    truncated) and ``StoreError`` when the backend fails (``StoreUnavailableError``: it cannot
    be reached; ``CorruptRecordError``: a stored record the library did not write); a call that
    raises wrote nothing.
    """

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
        """Events newest first (ties by ``event_id`` descending).

        Args:
            organization_id: only this organization's events; ``None`` means every
                organization (for the operator and GDPR export, never for a tenant's request).
            since: only events at or after this time.
            until: only events before this time.
            types: only these types (an empty collection matches nothing).
            actor_id: only events of this actor.
            cursor: only events after this position (see :class:`AuditCursor`).
            limit: at most this many, 1 to 10,000.

        Raises:
            ValueError: a bad limit or a naive time.
            StoreError: the backend failed.
        """
        ...

    def purge(self, *, before: datetime) -> int:
        """Delete every event older than ``before``; return how many."""
        ...

    def pseudonymise(self, user_id: str, *, pseudonym: str) -> int:
        """In one atomic step, replace ``user_id`` by ``pseudonym`` as actor and as subject of
        every event, and clear the IP address and user agent of the events it acted in.

        Returns:
            The number of events changed.
        """
        ...
