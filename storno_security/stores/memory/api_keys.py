"""In-memory API-key store: thread-safe, per process, for tests, single-process apps and defaults.

Reads take no lock (one dictionary lookup returns an immutable record); every write replaces a
record under one lock, so revocation and ``touch`` are atomic among the threads of a process.
"""

from __future__ import annotations

import threading
from datetime import datetime

import attrs

from storno_security.api_keys.scopes import ApiKeyScope
from storno_security.api_keys.storage import ApiKeyInfo, ApiKeyRecord
from storno_security.errors import StoreError

__all__ = ["MemoryApiKeyStore"]


class MemoryApiKeyStore:
    """API keys in a dictionary keyed by key id, writes guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, ApiKeyRecord] = {}
        self._hashes: set[str] = set()

    def __repr__(self) -> str:
        return f"MemoryApiKeyStore({len(self._records)} keys)"

    def create(self, record: ApiKeyRecord) -> None:
        """See :meth:`ApiKeyStore.create`."""
        if not isinstance(record, ApiKeyRecord):
            raise TypeError(f"record must be an ApiKeyRecord, not {type(record).__name__}")
        if not isinstance(record.info.scope, ApiKeyScope):
            raise TypeError("scope must be an ApiKeyScope")
        with self._lock:
            if record.info.key_id in self._records or record.key_hash in self._hashes:
                raise StoreError("the API key id or hash exists already", reason="duplicate")
            self._records[record.info.key_id] = _whole(record)
            self._hashes.add(record.key_hash)

    def get(self, key_id: str) -> ApiKeyRecord | None:
        """See :meth:`ApiKeyStore.get`."""
        return self._records.get(key_id)

    def list_keys(
        self, *, user_id: str | None = None, organization_id: str | None = None
    ) -> list[ApiKeyInfo]:
        """See :meth:`ApiKeyStore.list_keys`."""
        if user_id is None and organization_id is None:
            raise ValueError("give user_id, organization_id or both")
        with self._lock:
            records = list(self._records.values())
        found = [
            r.info
            for r in records
            if (user_id is None or r.info.user_id == user_id)
            and (organization_id is None or r.info.organization_id == organization_id)
        ]
        return sorted(found, key=lambda info: (info.created_at, info.key_id))

    def revoke(
        self,
        key_id: str,
        *,
        now: datetime,
        expected_user_id: str | None = None,
        expected_organization_id: str | None = None,
    ) -> bool:
        """See :meth:`ApiKeyStore.revoke`."""
        with self._lock:
            record = self._records.get(key_id)
            if record is None or record.info.revoked_at is not None:
                return False
            if expected_user_id is not None and record.info.user_id != expected_user_id:
                return False
            if (
                expected_organization_id is not None
                and record.info.organization_id != expected_organization_id
            ):
                return False
            self._replace(record, revoked_at=now)
            return True

    def revoke_user_keys(
        self, user_id: str, *, now: datetime, organization_id: str | None = None
    ) -> list[str]:
        """See :meth:`ApiKeyStore.revoke_user_keys`."""
        revoked: list[str] = []
        with self._lock:
            for record in list(self._records.values()):
                info = record.info
                if (
                    info.user_id == user_id
                    and info.revoked_at is None
                    and (organization_id is None or info.organization_id == organization_id)
                ):
                    self._replace(record, revoked_at=now)
                    revoked.append(info.key_id)
        return sorted(revoked)

    def forget_user(self, user_id: str) -> int:
        """See :meth:`ApiKeyStore.forget_user`."""
        with self._lock:
            mine = [r for r in self._records.values() if r.info.user_id == user_id]
            for record in mine:
                del self._records[record.info.key_id]
                self._hashes.discard(record.key_hash)
            return len(mine)

    def touch(self, key_id: str, *, now: datetime, stale_before: datetime) -> bool:
        """See :meth:`ApiKeyStore.touch`."""
        with self._lock:
            record = self._records.get(key_id)
            if record is None:
                return False
            last = record.info.last_used_at
            if last is not None and last > stale_before:
                return False
            self._replace(record, last_used_at=now)
            return True

    def _replace(
        self,
        record: ApiKeyRecord,
        *,
        revoked_at: datetime | None = None,
        last_used_at: datetime | None = None,
    ) -> None:
        info = record.info
        info = attrs.evolve(
            info,
            revoked_at=info.revoked_at if revoked_at is None else revoked_at,
            last_used_at=info.last_used_at if last_used_at is None else last_used_at,
        )
        self._records[info.key_id] = _whole(ApiKeyRecord(info=info, key_hash=record.key_hash))


def _whole(record: ApiKeyRecord) -> ApiKeyRecord:
    """The record with its principal built now, as the store takes it: verification then
    allocates nothing that outlives the call (a principal first built on a verify lived as
    long as the record, and thousands of distinct keys verified made the garbage collector
    pause requests for milliseconds)."""
    _ = record.info.principal
    return record
