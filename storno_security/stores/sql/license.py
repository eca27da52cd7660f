"""SQL store of the license capability: the last verified time per key.

:class:`SqlLastSeenStore` implements :class:`~storno_security.license.storage.LastSeenStore`.
Import it from :mod:`storno_security.stores.sql`.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from storno_security.clock import ensure_aware_utc
from storno_security.stores.sql._base import (
    _MYSQL_DIALECTS,
    _USER_LENGTH,
    _check_text,
    _ExactString,
    _existing_row,
    _required_time,
    _SqlStore,
    _transaction,
    _upsert,
    _UtcDateTime,
    metadata,
)

__all__ = ["SqlLastSeenStore", "license_last_seen"]

license_last_seen = sa.Table(
    "storno_license_last_seen",
    metadata,
    sa.Column("key", _ExactString(_USER_LENGTH), primary_key=True),
    sa.Column("last_seen", _UtcDateTime(), nullable=False),
    mysql_engine="InnoDB",
)

_L = license_last_seen.c


class SqlLastSeenStore(_SqlStore):
    """Last verified times in ``storno_license_last_seen``; persistent, shared by every process.

    Args:
        engine: an engine from :func:`create_engine` whose schema exists (:func:`create_schema`).
    """

    def record(self, key: str, seen: datetime) -> datetime:
        """Move ``key``'s last-seen time forward to ``seen``; never back.

        One transaction of two statements: a conditional upsert, then a read of the stored
        time. The upsert inserts a new key, or updates an existing one only ``WHERE last_seen <
        :seen`` (``ON CONFLICT ... DO UPDATE ... WHERE`` on PostgreSQL and SQLite; on
        MariaDB/MySQL, ``ON DUPLICATE KEY UPDATE`` keeps the greater of the two). It is one
        statement, so concurrent writers, new key or not, can only move the time forward, and
        none of them deadlocks on a lock upgrade (which an ``INSERT`` that fails on a duplicate
        and is followed by an ``UPDATE`` does on InnoDB).

        Returns:
            The last-seen time after the call (``seen`` or later).

        Raises:
            TypeError: ``key`` is not a ``str`` or ``seen`` not a ``datetime``.
            ValueError: ``key`` is empty, longer than 255 characters or holds NUL; ``seen`` is
                naive.
            StoreUnavailableError: the database could not be reached; nothing changed.
            StoreError: the database failed, or its dialect is not one of SQLite, PostgreSQL,
                MariaDB and MySQL (``reason="config"``); nothing changed.
            CorruptRecordError: the stored time is malformed.
        """
        key = _check_text("key", key, _USER_LENGTH)
        seen = ensure_aware_utc(seen)
        with _transaction(self._engine) as conn:
            conn.execute(self._forward(conn.dialect.name, key, seen))
            row = _existing_row(conn, sa.select(_L.last_seen).where(_L.key == key), "missing_row")
        return _required_time(row.last_seen)

    @staticmethod
    def _forward(dialect: str, key: str, seen: datetime) -> sa.Executable:
        """The conditional upsert of :meth:`record` in the dialect's own syntax."""
        statement = _upsert(dialect, license_last_seen, {"key": key, "last_seen": seen})
        if dialect in _MYSQL_DIALECTS:
            newer = statement.inserted.last_seen
            return statement.on_duplicate_key_update(  # type: ignore[no-any-return]
                last_seen=sa.case((_L.last_seen < newer, newer), else_=_L.last_seen)
            )
        return statement.on_conflict_do_update(  # type: ignore[no-any-return]
            index_elements=[_L.key],
            set_={"last_seen": statement.excluded.last_seen},
            where=_L.last_seen < statement.excluded.last_seen,
        )
