"""In-memory token stores: thread-safe, per process, for tests, single-process apps and defaults.

Each "exactly once" operation runs under one lock, so it is atomic among the threads of one
process. State is lost on restart and is not shared between processes: use the SQL or Redis
stores when several workers serve the same users.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Final

import attrs

from storno_security.errors import StoreError
from storno_security.stores._adapters import SessionStates, _epoch
from storno_security.stores.memory._base import _check_str
from storno_security.stores.memory._records import MemoryRecords
from storno_security.tokens.storage import RefreshFamily, Rotation, RotationOutcome, SessionState

__all__ = ["MemoryRefreshFamilyStore", "MemorySessionStateStore"]


@attrs.define
class _FamilyRow:
    family: RefreshFamily
    revoked_at: datetime | None = None


@attrs.define
class _TokenRow:
    family_id: str
    used_at: datetime | None = None
    successor: str | None = None  # the token its rotation made


class MemoryRefreshFamilyStore:
    """Refresh-token families in a dictionary guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._families: dict[str, _FamilyRow] = {}
        self._tokens: dict[str, _TokenRow] = {}

    def create_family(self, family: RefreshFamily, *, token_hash: str) -> None:
        """See :meth:`RefreshFamilyStore.create_family`."""
        with self._lock:
            if family.family_id in self._families:
                raise StoreError("refresh family id exists already", reason="duplicate")
            if token_hash in self._tokens:
                raise StoreError("refresh token hash exists already", reason="duplicate")
            self._families[family.family_id] = _FamilyRow(family)
            self._tokens[token_hash] = _TokenRow(family.family_id)

    def rotate(
        self,
        *,
        presented_hash: str,
        new_hash: str,
        now: datetime,
        expected_user_id: str | None = None,
        grace: timedelta | None = None,
    ) -> Rotation:
        """See :meth:`RefreshFamilyStore.rotate`."""
        with self._lock:
            token = self._tokens.get(presented_hash)
            if token is None:
                return Rotation(RotationOutcome.UNKNOWN)
            row = self._families[token.family_id]
            family = row.family
            if expected_user_id is not None and family.user_id != expected_user_id:
                return Rotation(RotationOutcome.WRONG_USER)
            if family.expires_at <= now:
                return Rotation(RotationOutcome.EXPIRED, family)
            if token.used_at is not None:
                successor = None if token.successor is None else self._tokens[token.successor]
                if (
                    grace is not None
                    and row.revoked_at is None
                    and successor is not None
                    and successor.used_at is None
                    and now < token.used_at + grace
                ):
                    self._add(new_hash, family.family_id)
                    successor.used_at = now
                    return Rotation(RotationOutcome.REISSUED, family)
                if row.revoked_at is None:
                    row.revoked_at = now
                return Rotation(RotationOutcome.REUSED, family)
            if row.revoked_at is not None:
                return Rotation(RotationOutcome.REVOKED, family)
            self._add(new_hash, family.family_id)
            token.used_at, token.successor = now, new_hash
            return Rotation(RotationOutcome.ROTATED, family)

    def _add(self, token_hash: str, family_id: str) -> None:
        """Under the lock: a new live token of the family."""
        if token_hash in self._tokens:
            raise StoreError("refresh token hash exists already", reason="duplicate")
        self._tokens[token_hash] = _TokenRow(family_id)

    def revoke_by_token(
        self, token_hash: str, *, now: datetime, expected_user_id: str
    ) -> RefreshFamily | None:
        """See :meth:`RefreshFamilyStore.revoke_by_token`."""
        with self._lock:
            token = self._tokens.get(token_hash)
            if token is None:
                return None
            row = self._families[token.family_id]
            if row.family.user_id != expected_user_id:
                return None
            if row.revoked_at is None:
                row.revoked_at = now
            return row.family

    def revoke_family(self, family_id: str, *, now: datetime) -> bool:
        """See :meth:`RefreshFamilyStore.revoke_family`."""
        with self._lock:
            row = self._families.get(family_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = now
            return True

    def revoke_user_families(self, user_id: str, *, now: datetime) -> list[str]:
        """See :meth:`RefreshFamilyStore.revoke_user_families`."""
        revoked: list[str] = []
        with self._lock:
            for family_id, row in self._families.items():
                if row.family.user_id == user_id and row.revoked_at is None:
                    row.revoked_at = now
                    revoked.append(family_id)
        return sorted(revoked)

    def live_families(self, user_id: str, *, now: datetime) -> list[RefreshFamily]:
        """See :meth:`RefreshFamilyStore.live_families`."""
        with self._lock:
            live = [
                row.family
                for row in self._families.values()
                if row.family.user_id == user_id
                and row.revoked_at is None
                and row.family.expires_at > now
            ]
        return sorted(live, key=lambda family: (family.created_at, family.family_id))

    def forget_user(self, user_id: str) -> int:
        """See :meth:`RefreshFamilyStore.forget_user`."""
        with self._lock:
            return self._delete(
                {f for f, row in self._families.items() if row.family.user_id == user_id}
            )

    def _delete(self, dead: set[str]) -> int:
        """Under the lock: delete these families and their token hashes; return how many."""
        for fid in dead:
            del self._families[fid]
        hashes = [h for h, t in self._tokens.items() if t.family_id in dead]
        for token_hash in hashes:
            del self._tokens[token_hash]
        return len(dead) + len(hashes)

    def purge_expired(self, *, now: datetime) -> int:
        """See :meth:`RefreshFamilyStore.purge_expired`."""
        with self._lock:
            dead = {fid for fid, row in self._families.items() if row.family.expires_at < now}
            self._delete(dead)
            return len(dead)


#: The state of a session whose user was never bumped and which was never revoked.
_UNTOUCHED: Final = SessionState(epoch=0, revoked=False)


class MemorySessionStateStore(SessionStates):
    """Session epochs and revoked-session markers on in-memory records."""

    def __init__(self) -> None:
        self._memory = MemoryRecords()
        super().__init__(self._memory)

    def session_state(self, *, user_id: str, session_id: str) -> SessionState:
        """See :meth:`SessionStateStore.session_state`."""
        memory = self._memory
        with memory._lock:
            epoch = memory._rows.get(("epoch", _check_str("user_id", user_id)))
            revoked = ("revoked", _check_str("session_id", session_id)) in memory._rows
        if epoch is None and not revoked:
            return _UNTOUCHED  # the common case, on every request: no record to build
        return SessionState(0 if epoch is None else _epoch(epoch.record.number), revoked)
