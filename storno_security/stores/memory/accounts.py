"""In-memory password-reset token store: thread-safe, per process, for tests, single-process apps
and defaults.

Every operation runs under one lock, so using a token is atomic among the threads of a process.
"""

from __future__ import annotations

import itertools
import threading
from datetime import datetime
from typing import NamedTuple

from storno_security.accounts.storage import ResetTokenUse, _check_max_active
from storno_security.clock import ensure_aware_utc
from storno_security.errors import StoreError
from storno_security.stores.memory._base import _check_str

__all__ = ["MemoryResetTokenStore"]


class _Row(NamedTuple):
    user_id: str
    created_at: datetime
    expires_at: datetime
    seq: int  # insertion order: breaks ties of created_at


class MemoryResetTokenStore:
    """Reset-token hashes in a dictionary, with an index by user, guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, _Row] = {}
        self._by_user: dict[str, set[str]] = {}
        self._seq = itertools.count()

    def __repr__(self) -> str:
        return f"MemoryResetTokenStore({len(self._rows)} tokens)"

    def add(
        self,
        token_hash: str,
        *,
        user_id: str,
        created_at: datetime,
        expires_at: datetime,
        max_active: int,
    ) -> None:
        """See :meth:`ResetTokenStore.add`.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: the hash or user id is empty, a time is naive, ``max_active`` is out of
                range, or the token would expire before it is created.
            StoreError: the hash exists already (``reason="duplicate"``); nothing was written.
        """
        token_hash = _check_str("token_hash", token_hash)
        user_id = _check_str("user_id", user_id)
        if not token_hash or not user_id:
            raise ValueError("token_hash and user_id must not be empty")
        created_at = ensure_aware_utc(created_at)
        expires_at = ensure_aware_utc(expires_at)
        if not created_at < expires_at:
            raise ValueError("expires_at must be after created_at")
        max_active = _check_max_active(max_active)
        with self._lock:
            if token_hash in self._rows:
                raise StoreError("the reset token hash exists already", reason="duplicate")
            for dead in [
                h
                for h in self._by_user.get(user_id, ())
                if not created_at < self._rows[h].expires_at
            ]:
                self._remove(dead)
            hashes = self._by_user.setdefault(user_id, set())
            self._rows[token_hash] = _Row(user_id, created_at, expires_at, next(self._seq))
            hashes.add(token_hash)
            newest_first = sorted(
                hashes, key=lambda h: (self._rows[h].created_at, self._rows[h].seq), reverse=True
            )
            for old in newest_first[max_active:]:
                self._remove(old)

    def consume(self, token_hash: str, *, now: datetime) -> ResetTokenUse:
        """See :meth:`ResetTokenStore.consume`.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``now`` is naive.
        """
        token_hash = _check_str("token_hash", token_hash)
        now = ensure_aware_utc(now)
        with self._lock:
            row = self._rows.get(token_hash)
            if row is None:
                return ResetTokenUse()
            if not now < row.expires_at:
                return ResetTokenUse(expired=True)
            self._remove_user(row.user_id)
            return ResetTokenUse(user_id=row.user_id)

    def revoke_all(self, user_id: str) -> int:
        """See :meth:`ResetTokenStore.revoke_all`.

        Raises:
            TypeError: ``user_id`` is not a str.
        """
        user_id = _check_str("user_id", user_id)
        with self._lock:
            return self._remove_user(user_id)

    def purge_expired(self, *, now: datetime) -> int:
        """See :meth:`ResetTokenStore.purge_expired`.

        Raises:
            TypeError: ``now`` is not a datetime.
            ValueError: ``now`` is naive.
        """
        now = ensure_aware_utc(now)
        with self._lock:
            dead = [h for h, row in self._rows.items() if not now < row.expires_at]
            for token_hash in dead:
                self._remove(token_hash)
            return len(dead)

    def _remove(self, token_hash: str) -> None:
        """Under the lock: delete one row and its index entry."""
        row = self._rows.pop(token_hash)
        hashes = self._by_user[row.user_id]
        hashes.discard(token_hash)
        if not hashes:
            del self._by_user[row.user_id]

    def _remove_user(self, user_id: str) -> int:
        """Under the lock: delete every row of the user; return how many."""
        hashes = self._by_user.pop(user_id, set())
        for token_hash in hashes:
            del self._rows[token_hash]
        return len(hashes)
