"""In-memory MFA stores: thread-safe, per process, for tests, single-process apps and defaults.

The TOTP replay guard, challenges, step-up tokens and failure counts are the shared adapters on
in-memory records; backup codes are bespoke. State is lost on restart and is not shared between
processes: use the SQL or Redis stores when several workers serve the same users.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime

import attrs

from storno_security.clock import ensure_aware_utc
from storno_security.errors import StoreError
from storno_security.mfa.storage import StoredBackupCode
from storno_security.stores._adapters import MfaChallenges, MfaFailures, StepUps, TotpReplay
from storno_security.stores.memory._base import _check_str
from storno_security.stores.memory._records import MemoryRecords

__all__ = [
    "MemoryBackupCodeStore",
    "MemoryMfaChallengeStore",
    "MemoryMfaFailureStore",
    "MemoryStepUpStore",
    "MemoryTotpReplayStore",
]


class MemoryTotpReplayStore(TotpReplay):
    """The last accepted TOTP step of each user, on in-memory records."""

    def __init__(self) -> None:
        super().__init__(MemoryRecords())


class MemoryMfaChallengeStore(MfaChallenges):
    """MFA login challenges on in-memory records."""

    def __init__(self) -> None:
        super().__init__(MemoryRecords())


class MemoryStepUpStore(StepUps):
    """Step-up verification tokens on in-memory records."""

    def __init__(self) -> None:
        super().__init__(MemoryRecords())


class MemoryMfaFailureStore(MfaFailures):
    """Per-user counts of second-factor attempts on in-memory records."""

    def __init__(self) -> None:
        super().__init__(MemoryRecords())


@attrs.define
class _CodeRow:
    user_id: str
    code: StoredBackupCode
    used_at: datetime | None = None


class MemoryBackupCodeStore:
    """Backup-code hashes in dictionaries guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: dict[str, _CodeRow] = {}
        self._by_user: dict[str, list[str]] = {}

    def replace_codes(
        self, user_id: str, codes: Sequence[StoredBackupCode], *, now: datetime
    ) -> None:
        """See :meth:`BackupCodeStore.replace_codes`."""
        ensure_aware_utc(now)
        if not all(isinstance(code, StoredBackupCode) for code in codes):
            raise TypeError("codes must be StoredBackupCode instances")
        new_ids = [code.code_id for code in codes]
        with self._lock:
            old_ids = self._by_user.get(user_id, [])
            if len(set(new_ids)) != len(new_ids) or any(
                cid in self._codes and cid not in old_ids for cid in new_ids
            ):
                raise StoreError("backup code id exists already", reason="duplicate")
            for cid in old_ids:
                del self._codes[cid]
            for code in codes:
                self._codes[code.code_id] = _CodeRow(user_id, code)
            self._by_user[user_id] = new_ids
            if not new_ids:
                del self._by_user[user_id]

    def find_code(self, user_id: str, hint: str) -> StoredBackupCode | None:
        """See :meth:`BackupCodeStore.find_code`."""
        with self._lock:
            for cid in self._by_user.get(user_id, ()):
                row = self._codes[cid]
                if row.used_at is None and row.code.hint == hint:
                    return row.code
            return None

    def use_code(self, user_id: str, code_id: str, *, now: datetime) -> bool:
        """See :meth:`BackupCodeStore.use_code`."""
        now = ensure_aware_utc(now)
        with self._lock:
            row = self._codes.get(code_id)
            if row is None or row.user_id != user_id or row.used_at is not None:
                return False
            row.used_at = now
            return True

    def count_unused(self, user_id: str) -> int:
        """See :meth:`BackupCodeStore.count_unused`."""
        with self._lock:
            return sum(
                1 for cid in self._by_user.get(user_id, ()) if self._codes[cid].used_at is None
            )

    def forget_user(self, user_id: str) -> int:
        """Delete the user's codes (ACC-7); return how many."""
        user_id = _check_str("user_id", user_id)
        with self._lock:
            ids = self._by_user.pop(user_id, [])
            for cid in ids:
                del self._codes[cid]
            return len(ids)
