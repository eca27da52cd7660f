"""Expiring records in dictionaries guarded by one lock (see
:mod:`storno_security.stores._records`). Private: the stores of this package are built on it."""

from __future__ import annotations

import itertools
import threading
from datetime import datetime

import attrs

from storno_security.stores._records import Record, Records, duplicate

__all__ = ["MemoryRecords"]


@attrs.define
class _Row:
    record: Record
    seq: int


class MemoryRecords(Records):
    """Records in a dictionary, with an index by subject; every operation under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str], _Row] = {}
        self._index: dict[tuple[str, str], set[str]] = {}  # (namespace, subject) -> keys
        self._seq = itertools.count()

    def __repr__(self) -> str:
        return f"MemoryRecords({len(self._rows)} records)"

    def _put(self, ns: str, key: str, record: Record) -> None:
        """Under the lock: write the record (a new insertion), indexed by its subject."""
        self._drop(ns, key)
        self._rows[ns, key] = _Row(record, next(self._seq))
        if record.subject is not None:
            self._index.setdefault((ns, record.subject), set()).add(key)

    def _drop(self, ns: str, key: str) -> Record | None:
        """Under the lock: delete the record at ``key``, if any, and its index entry."""
        row = self._rows.pop((ns, key), None)
        if row is None:
            return None
        subject = row.record.subject
        if subject is not None:
            keys = self._index[ns, subject]
            keys.discard(key)
            if not keys:
                del self._index[ns, subject]
        return row.record

    def _insert(self, ns: str, key: str, record: Record, keep: int | None) -> None:
        now, subject = record.created_at, record.subject
        with self._lock:
            row = self._rows.get((ns, key))
            if row is not None and not _expired(row.record, now):
                raise duplicate()
            self._put(ns, key, record)
            if keep is None or subject is None:
                return
            newest_first = sorted(
                ((self._rows[ns, k], k) for k in self._index[ns, subject]),
                key=lambda pair: (pair[0].record.created_at, pair[0].seq),
                reverse=True,
            )
            live = [k for row, k in newest_first if row.record.live(now)]
            for k in [k for row, k in newest_first if not row.record.live(now)] + live[keep:]:
                self._drop(ns, k)

    def _get(self, ns: str, key: str, now: datetime) -> Record | None:
        with self._lock:
            row = self._rows.get((ns, key))
        return row.record if row is not None and row.record.live(now) else None

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
        with self._lock:
            row = self._rows.get((ns, key))
            if row is None:
                return None
            record = row.record
            if subject is not None and record.subject != subject:
                return None
            if tag is not None and record.tag != tag:
                return None
            if expired or record.live(now):
                self._drop(ns, key)
                if siblings and record.subject is not None:
                    self._forget_locked(ns, record.subject)
            return record

    def _count(
        self,
        ns: str,
        key: str,
        now: datetime,
        expires_at: datetime | None,
        subject: str | None,
        create: bool,
    ) -> Record | None:
        with self._lock:
            row = self._rows.get((ns, key))
            if row is not None and (
                not _expired(row.record, now) if create else row.record.live(now)
            ):
                row.record = attrs.evolve(row.record, number=row.record.number + 1)
                return row.record
            if not create:
                return None
            record = Record(subject, None, "", 1, None, now, expires_at)
            self._put(ns, key, record)
            return record

    def _advance(
        self,
        ns: str,
        key: str,
        number: int,
        now: datetime,
        expires_at: datetime | None,
        subject: str | None,
    ) -> tuple[bool, int]:
        with self._lock:
            row = self._rows.get((ns, key))
            if row is not None and not _expired(row.record, now) and row.record.number >= number:
                return False, row.record.number
            self._put(ns, key, Record(subject, None, "", number, None, now, expires_at))
            return True, number

    def _forget(self, ns: str, subject: str) -> int:
        with self._lock:
            return self._forget_locked(ns, subject)

    def _forget_locked(self, ns: str, subject: str) -> int:
        keys = list(self._index.get((ns, subject), ()))
        for key in keys:
            self._drop(ns, key)
        return len(keys)

    def _purge(self, ns: str, now: datetime) -> int:
        with self._lock:
            dead = [
                key
                for (space, key), row in self._rows.items()
                if space == ns and row.record.expires_at is not None and row.record.expires_at < now
            ]
            for key in dead:
                self._drop(ns, key)
            return len(dead)


def _expired(record: Record, now: datetime) -> bool:
    return record.expires_at is not None and not now < record.expires_at
