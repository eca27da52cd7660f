"""In-memory passkey stores: thread-safe, per process, for tests, single-process apps and defaults.

Each "exactly once" operation runs under one lock, so it is atomic among the threads of one
process. State is lost on restart and is not shared between processes: use the SQL or Redis
stores when several workers serve the same users.
"""

from __future__ import annotations

import threading
from datetime import datetime

import attrs

from storno_security.clock import ensure_aware_utc
from storno_security.errors import StoreError
from storno_security.passkeys.storage import PasskeyCredential, UseOutcome, credential_key
from storno_security.stores._adapters import PasskeyChallenges
from storno_security.stores.memory._base import _check_str
from storno_security.stores.memory._records import MemoryRecords

__all__ = ["MemoryPasskeyChallengeStore", "MemoryPasskeyCredentialStore"]


class MemoryPasskeyChallengeStore(PasskeyChallenges):
    """Ceremony challenges on in-memory records."""

    def __init__(self) -> None:
        super().__init__(MemoryRecords())


class MemoryPasskeyCredentialStore:
    """Passkeys and user handles in dictionaries guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._credentials: dict[str, PasskeyCredential] = {}
        self._handles: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return "MemoryPasskeyCredentialStore()"

    def user_handle(self, user_id: str, *, candidate: bytes) -> bytes:
        """See :meth:`PasskeyCredentialStore.user_handle`."""
        _check_user(user_id)
        if not isinstance(candidate, bytes) or not 1 <= len(candidate) <= 64:
            raise ValueError("candidate must be 1 to 64 bytes")
        with self._lock:
            return self._handles.setdefault(user_id, candidate)

    def add(self, credential: PasskeyCredential) -> None:
        """See :meth:`PasskeyCredentialStore.add`."""
        if not isinstance(credential, PasskeyCredential):
            raise TypeError("credential must be a PasskeyCredential")
        key = credential.key
        with self._lock:
            if key in self._credentials:
                raise StoreError("credential exists already", reason="duplicate")
            self._credentials[key] = credential

    def get(self, credential_id: bytes) -> PasskeyCredential | None:
        """See :meth:`PasskeyCredentialStore.get`."""
        return self._credentials.get(credential_key(credential_id))

    def list_for_user(self, user_id: str) -> list[PasskeyCredential]:
        """See :meth:`PasskeyCredentialStore.list_for_user`."""
        _check_user(user_id)
        with self._lock:
            mine = [c for c in self._credentials.values() if c.user_id == user_id]
        return sorted(mine, key=lambda c: (c.created_at, c.credential_id))

    def rename(self, credential_id: bytes, *, user_id: str, name: str) -> bool:
        """See :meth:`PasskeyCredentialStore.rename`."""
        key = credential_key(credential_id)
        with self._lock:
            current = self._credentials.get(key)
            if current is None or current.user_id != user_id:
                return False
            self._credentials[key] = attrs.evolve(current, name=name)
            return True

    def delete(self, credential_id: bytes, *, user_id: str) -> bool:
        """See :meth:`PasskeyCredentialStore.delete`."""
        key = credential_key(credential_id)
        with self._lock:
            current = self._credentials.get(key)
            if current is None or current.user_id != user_id:
                return False
            del self._credentials[key]
            return True

    def delete_for_user(self, user_id: str) -> int:
        """See :meth:`PasskeyCredentialStore.delete_for_user`."""
        _check_user(user_id)
        with self._lock:
            mine = [k for k, c in self._credentials.items() if c.user_id == user_id]
            for key in mine:
                del self._credentials[key]
            return len(mine)

    def forget_user(self, user_id: str) -> int:
        """Delete the user's credentials and handle (ACC-7); return how many records."""
        _check_user(user_id)
        with self._lock:
            handle = self._handles.pop(user_id, None)
            mine = [k for k, c in self._credentials.items() if c.user_id == user_id]
            for key in mine:
                del self._credentials[key]
            return len(mine) + (handle is not None)

    def record_use(
        self, credential_id: bytes, *, sign_count: int, backed_up: bool, now: datetime
    ) -> UseOutcome:
        """See :meth:`PasskeyCredentialStore.record_use`."""
        _check_count(sign_count)
        if not isinstance(backed_up, bool):
            raise TypeError("backed_up must be a bool")
        now = ensure_aware_utc(now)
        key = credential_key(credential_id)
        with self._lock:
            current = self._credentials.get(key)
            if current is None:
                return UseOutcome.UNKNOWN
            if current.flagged_at is not None:
                return UseOutcome.FLAGGED
            stored = current.sign_count
            if sign_count > stored or sign_count == stored == 0:
                self._credentials[key] = attrs.evolve(
                    current, sign_count=sign_count, backed_up=bool(backed_up), last_used_at=now
                )
                return UseOutcome.RECORDED
            self._credentials[key] = attrs.evolve(current, flagged_at=now)
            return UseOutcome.REGRESSED

    def flag(self, credential_id: bytes, *, now: datetime) -> bool:
        """See :meth:`PasskeyCredentialStore.flag`."""
        now = ensure_aware_utc(now)
        key = credential_key(credential_id)
        with self._lock:
            current = self._credentials.get(key)
            if current is None or current.flagged_at is not None:
                return False
            self._credentials[key] = attrs.evolve(current, flagged_at=now)
            return True


def _check_user(user_id: object) -> None:
    _check_str("user_id", user_id)


def _check_count(sign_count: object) -> None:
    if isinstance(sign_count, bool) or not isinstance(sign_count, int):
        raise TypeError("sign_count must be an int")
    if not 0 <= sign_count < 2**32:
        raise ValueError("sign_count must be between 0 and 2**32 - 1")
