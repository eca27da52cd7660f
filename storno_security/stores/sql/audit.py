"""SQL store of security events: ``storno_audit_events``.

:class:`SqlAuditStore` implements :class:`~storno_security.audit.AuditStore`. Import it from
:mod:`storno_security.stores.sql`. Details are stored as a JSON text column and checked again
when read, so a row edited by hand to hold a secret-shaped value is refused
(:class:`~storno_security.errors.CorruptRecordError`) rather than served.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from storno_security.audit.events import SecurityEvent, SecurityEventType
from storno_security.audit.storage import AuditCursor, _check_limit
from storno_security.clock import ensure_aware_utc
from storno_security.errors import CorruptRecordError
from storno_security.stores._records import storable
from storno_security.stores.sql._base import (
    _USER_LENGTH,
    _check_key,
    _ExactString,
    _required_time,
    _SqlStore,
    _transaction,
    _UtcDateTime,
    metadata,
)

__all__ = ["SqlAuditStore", "audit_events"]

_EVENT_ID_LENGTH = 32
_USER_AGENT_LENGTH = 512

audit_events = sa.Table(
    "storno_audit_events",
    metadata,
    sa.Column("event_id", _ExactString(_EVENT_ID_LENGTH), primary_key=True),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("at", _UtcDateTime(), nullable=False, index=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("actor_id", _ExactString(_USER_LENGTH), nullable=True, index=True),
    sa.Column("subject_id", _ExactString(_USER_LENGTH), nullable=True, index=True),
    sa.Column("organization_id", _ExactString(_USER_LENGTH), nullable=True),
    sa.Column("company_id", _ExactString(_USER_LENGTH), nullable=True),
    sa.Column("ip", sa.String(64), nullable=True),
    sa.Column("user_agent", sa.Text(), nullable=True),
    sa.Column("details", sa.Text(), nullable=False),
    sa.Index("ix_storno_audit_events_org_at", "organization_id", "at"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)
_A = audit_events.c


def _row_values(event: SecurityEvent) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "event_type": event.type.value,
        "at": event.at,
        "outcome": event.outcome.value,
        "actor_id": event.actor_id,
        "subject_id": event.subject_id,
        "organization_id": event.organization_id,
        "company_id": event.company_id,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "details": json.dumps(dict(event.details), ensure_ascii=False, separators=(",", ":")),
    }


def _event_of(row: sa.Row[Any]) -> SecurityEvent:
    try:
        details = json.loads(row.details)
        return SecurityEvent(
            event_id=row.event_id,
            type=row.event_type,
            at=_required_time(row.at),
            outcome=row.outcome,
            actor_id=row.actor_id,
            subject_id=row.subject_id,
            organization_id=row.organization_id,
            company_id=row.company_id,
            ip=row.ip,
            user_agent=row.user_agent,
            details=details,
        )
    except (TypeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise CorruptRecordError(reason="bad_audit_event") from exc


class SqlAuditStore(_SqlStore):
    """Security events in ``storno_audit_events``.

    Args:
        engine: an engine from :func:`~storno_security.stores.sql.create_engine` whose schema
            exists (:func:`~storno_security.stores.sql.create_schema`).
    """

    def record(self, event: SecurityEvent) -> None:
        """See :meth:`AuditSink.record`."""
        if not isinstance(event, SecurityEvent):
            raise TypeError("event must be a SecurityEvent")
        self._insert(audit_events, _row_values(event))

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
        query = sa.select(audit_events)
        if organization_id is not None:
            query = query.where(
                _A.organization_id == _check_key("organization_id", organization_id)
            )
        if since is not None:
            query = query.where(_A.at >= ensure_aware_utc(since))
        if until is not None:
            query = query.where(_A.at < ensure_aware_utc(until))
        if types is not None:
            names = sorted({SecurityEventType(t).value for t in types})
            query = query.where(_A.event_type.in_(names)) if names else query.where(sa.false())
        if actor_id is not None:
            query = query.where(_A.actor_id == _check_key("actor_id", actor_id))
        if cursor is not None:
            at = ensure_aware_utc(cursor.at)
            event_id = _check_key("cursor.event_id", cursor.event_id)
            query = query.where(sa.or_(_A.at < at, sa.and_(_A.at == at, _A.event_id < event_id)))
        query = query.order_by(_A.at.desc(), _A.event_id.desc()).limit(limit)
        return self._read_all(query, _event_of)

    def purge(self, *, before: datetime) -> int:
        """See :meth:`AuditStore.purge`."""
        return self._delete(audit_events, _A.at < ensure_aware_utc(before))

    def pseudonymise(self, user_id: str, *, pseudonym: str) -> int:
        """See :meth:`AuditStore.pseudonymise`: one transaction."""
        user_id = storable("user_id", user_id, _USER_LENGTH)
        pseudonym = storable("pseudonym", pseudonym, _USER_LENGTH)
        mine = sa.or_(_A.actor_id == user_id, _A.subject_id == user_id)
        with _transaction(self._engine) as conn:
            count = conn.execute(sa.select(sa.func.count()).where(mine)).scalar_one()
            conn.execute(
                sa.update(audit_events)
                .where(_A.actor_id == user_id)
                .values(actor_id=pseudonym, ip=None, user_agent=None)
            )
            conn.execute(
                sa.update(audit_events).where(_A.subject_id == user_id).values(subject_id=pseudonym)
            )
        return int(count)  # COUNT(*): an integer on every backend
