"""Expiring records in one table, ``storno_records`` (see
:mod:`storno_security.stores._records`). Private: the short-lived stores are built on it.

Every operation is one transaction whose outcome a row count or a row lock decides:

* ``take`` and ``count`` without ``create``: a conditional ``DELETE``/``UPDATE`` of the live row;
* ``count`` with ``create`` and ``advance``: a no-op upsert locks the row, or inserts the new one
  with a random nonce that tells the caller it did; the decision is then made on the locked row;
* ``insert`` with ``keep`` and ``take`` with ``siblings`` touch several rows of a subject: they
  first take the subject's *lock row* in ``storno_record_locks`` (an upsert, which locks the row
  it inserts or finds; a table of its own, so that waiting on it takes no gap lock where records
  are inserted), so such transactions queue per subject and never deadlock. The lock row lasts
  as long as the longest-lived record of its subject, so :meth:`purge` removes it too, and
  :meth:`forget` deletes it.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

import attrs
import sqlalchemy as sa

from storno_security.errors import CorruptRecordError
from storno_security.stores._records import MAX_KEY, MAX_TAG, Record, Records
from storno_security.stores.sql._base import (
    _MYSQL_DIALECTS,
    _changed_one,
    _ExactString,
    _existing_row,
    _fetch,
    _fetch_one,
    _optional_time,
    _required_time,
    _transaction,
    _upsert,
    _UtcDateTime,
    metadata,
)

__all__ = ["SqlRecords", "record_locks", "records"]

records = sa.Table(
    "storno_records",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("namespace", _ExactString(32), nullable=False),
    sa.Column("record_key", _ExactString(MAX_KEY), nullable=False),
    sa.Column("subject", _ExactString(MAX_KEY), nullable=True),
    sa.Column("tag", _ExactString(MAX_TAG), nullable=True),
    sa.Column("data", sa.Text(), nullable=False),
    sa.Column("number", sa.BigInteger(), nullable=False),
    sa.Column("max_number", sa.BigInteger(), nullable=True),
    sa.Column("created_at", _UtcDateTime(), nullable=False),
    sa.Column("expires_at", _UtcDateTime(), nullable=True),
    sa.Column("nonce", _ExactString(32), nullable=True),
    sa.UniqueConstraint("namespace", "record_key", name="uq_storno_records_key"),
    sa.Index("ix_storno_records_subject", "namespace", "subject", "created_at", "id"),
    sa.Index("ix_storno_records_expiry", "namespace", "expires_at"),
    mysql_engine="InnoDB",
)

record_locks = sa.Table(
    "storno_record_locks",
    metadata,
    sa.Column("namespace", _ExactString(32), primary_key=True),
    sa.Column("subject", _ExactString(MAX_KEY), primary_key=True),
    sa.Column("expires_at", _UtcDateTime(), nullable=False),
    mysql_engine="InnoDB",
)

_R = records.c
_L = record_locks.c


def _live(now: datetime) -> tuple[Any, ...]:
    return (
        sa.or_(_R.expires_at.is_(None), _R.expires_at > now),
        sa.or_(_R.max_number.is_(None), _R.number < _R.max_number),
    )


def _record_of(row: Any) -> Record:
    """A record from a row, refusing values the library never writes."""
    for name in ("subject", "tag"):
        value = getattr(row, name)
        if value is not None and (not isinstance(value, str) or not value):
            raise CorruptRecordError(reason=f"bad_{name}")
    for name in ("number", "max_number"):
        value = getattr(row, name)
        if isinstance(value, bool) or not isinstance(value, int | type(None)):
            raise CorruptRecordError(reason="bad_number")
    if not isinstance(row.data, str) or not isinstance(row.number, int):
        raise CorruptRecordError(reason="bad_data")
    return Record(
        row.subject,
        row.tag,
        row.data,
        row.number,
        row.max_number,
        _required_time(row.created_at),
        _optional_time(row.expires_at),
    )


class SqlRecords(Records):
    """Records in ``storno_records``.

    Args:
        engine: an engine from :func:`create_engine` whose schema exists (:func:`create_schema`).
    """

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def __repr__(self) -> str:
        return f"SqlRecords({self._engine.dialect.name})"

    def _lock_subject(self, conn: sa.Connection, ns: str, subject: str, until: datetime) -> None:
        """Take the subject's lock row (see the module docstring); it lasts at least ``until``."""
        dialect = conn.dialect.name
        values = {"namespace": ns, "subject": subject, "expires_at": until}
        statement = _upsert(dialect, record_locks, values)
        if dialect in _MYSQL_DIALECTS:
            new = statement.inserted.expires_at
            later = sa.case((new > _L.expires_at, new), else_=_L.expires_at)
            statement = statement.on_duplicate_key_update(expires_at=later)
        else:
            new = statement.excluded.expires_at
            later = sa.case((new > _L.expires_at, new), else_=_L.expires_at)
            statement = statement.on_conflict_do_update(
                index_elements=[_L.namespace, _L.subject], set_={"expires_at": later}
            )
        conn.execute(statement)

    def _lock_row(self, conn: sa.Connection, values: dict[str, Any]) -> tuple[Any, bool]:
        """Insert ``values`` or lock the existing row of the key; return the row and whether
        this call inserted it."""
        values = {**values, "nonce": secrets.token_hex(16)}
        dialect = conn.dialect.name
        statement = _upsert(dialect, records, values)
        if dialect in _MYSQL_DIALECTS:  # a no-op update: locks the row
            conn.execute(statement.on_duplicate_key_update(namespace=_R.namespace))
        else:
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[_R.namespace, _R.record_key], set_={"namespace": _R.namespace}
                )
            )
        where = (_R.namespace == values["namespace"], _R.record_key == values["record_key"])
        row = _existing_row(conn, sa.select(records).where(*where))
        return row, row.nonce == values["nonce"]

    def _insert(self, ns: str, key: str, record: Record, keep: int | None) -> None:
        now, expires_at, subject = record.created_at, record.expires_at, record.subject
        values = _values(ns, key, record)
        with _transaction(self._engine, duplicate=True) as conn:
            if keep is not None and subject is not None and expires_at is not None:
                self._lock_subject(conn, ns, subject, expires_at)
            mine = (_R.namespace == ns, _R.record_key == key)
            conn.execute(sa.delete(records).where(*mine, _R.expires_at <= now))  # a dead one
            conn.execute(sa.insert(records).values(**values))  # a duplicate: reason="duplicate"
            if keep is None or subject is None:
                return
            query = (
                sa.select(records)
                .where(_R.namespace == ns, _R.subject == subject)
                .order_by(_R.created_at.desc(), _R.id.desc())
            )
            rows = [(row.id, _record_of(row)) for row in _fetch(conn.execute(query))]
            live = [row_id for row_id, record in rows if record.live(now)]
            dropped = [row_id for row_id, record in rows if not record.live(now)] + live[keep:]
            if dropped:
                conn.execute(sa.delete(records).where(_R.id.in_(dropped)))

    def _get(self, ns: str, key: str, now: datetime) -> Record | None:
        query = sa.select(records).where(_R.namespace == ns, _R.record_key == key, *_live(now))
        with _transaction(self._engine, read_only=True) as conn:
            row = _fetch_one(conn.execute(query))
        return None if row is None else _record_of(row)

    def _take(
        self,
        ns: str,
        key: str,
        now: datetime,
        subject: str | None,
        tag: str | None,
        expired: bool,
        siblings: bool,
    ) -> Record | None:
        with _transaction(self._engine) as conn:
            query = sa.select(records).where(_R.namespace == ns, _R.record_key == key)
            row = _fetch_one(conn.execute(query))
            if row is None:
                return None
            record = _record_of(row)
            if (subject is not None and record.subject != subject) or (
                tag is not None and record.tag != tag
            ):
                return None
            if not (expired or record.live(now)):
                return record
            owner = record.subject if siblings else None
            if owner is not None:
                self._lock_subject(conn, ns, owner, now)
            condition = () if expired else _live(now)
            won = _changed_one(conn, sa.delete(records).where(_R.id == row.id, *condition))
            if owner is not None and won:
                conn.execute(sa.delete(records).where(_R.namespace == ns, _R.subject == owner))
            return record if won else None

    def _count(
        self,
        ns: str,
        key: str,
        now: datetime,
        expires_at: datetime | None,
        subject: str | None,
        create: bool,
    ) -> Record | None:
        mine = (_R.namespace == ns, _R.record_key == key)
        with _transaction(self._engine) as conn:
            if not create:
                add = sa.update(records).where(*mine, *_live(now)).values(number=_R.number + 1)
                if not _changed_one(conn, add):
                    return None
                counted = _record_of(_existing_row(conn, sa.select(records).where(*mine)))
                if counted.number < 1:  # it was negative: roll back
                    raise CorruptRecordError(reason="bad_number")
                return counted
            values = _values(ns, key, Record(subject, None, "", 1, None, now, expires_at))
            row, created = self._lock_row(conn, values)
            record = _record_of(row)
            if created:
                return record
            if record.expires_at is None or now < record.expires_at:
                if record.number < 0:
                    raise CorruptRecordError(reason="bad_number")
                conn.execute(sa.update(records).where(_R.id == row.id).values(number=_R.number + 1))
                return attrs.evolve(record, number=record.number + 1)
            conn.execute(sa.update(records).where(_R.id == row.id).values(**values))
            return Record(subject, None, "", 1, None, now, expires_at)

    def _advance(
        self,
        ns: str,
        key: str,
        number: int,
        now: datetime,
        expires_at: datetime | None,
        subject: str | None,
    ) -> tuple[bool, int]:
        values = _values(ns, key, Record(subject, None, "", number, None, now, expires_at))
        with _transaction(self._engine) as conn:
            row, created = self._lock_row(conn, values)
            if created:
                return True, number
            record = _record_of(row)
            alive = record.expires_at is None or now < record.expires_at
            if alive and record.number >= number:
                return False, record.number
            conn.execute(sa.update(records).where(_R.id == row.id).values(**values))
            return True, number

    def _forget(self, ns: str, subject: str) -> int:
        with _transaction(self._engine) as conn:
            conn.execute(sa.delete(record_locks).where(_L.namespace == ns, _L.subject == subject))
            mine = sa.delete(records).where(_R.namespace == ns, _R.subject == subject)
            return int(conn.execute(mine).rowcount)

    def _purge(self, ns: str, now: datetime) -> int:
        with _transaction(self._engine) as conn:
            conn.execute(sa.delete(record_locks).where(_L.namespace == ns, _L.expires_at < now))
            dead = sa.delete(records).where(_R.namespace == ns, _R.expires_at < now)
            return int(conn.execute(dead).rowcount)


def _values(ns: str, key: str, record: Record) -> dict[str, Any]:
    return {
        "namespace": ns,
        "record_key": key,
        "subject": record.subject,
        "tag": record.tag,
        "data": record.data,
        "number": record.number,
        "max_number": record.limit,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "nonce": None,
    }
