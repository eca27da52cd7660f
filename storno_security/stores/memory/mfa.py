"""In-memory MFA stores: thread-safe, per process, for tests, single-process apps and defaults.

Each "exactly once" operation runs under one lock, so it is atomic among the threads of one
process. State is lost on restart and is not shared between processes: use the SQL or Redis
stores when several workers serve the same users.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime

import attrs

from storno_security.clock import ensure_aware_utc
from storno_security.errors import StoreError
from storno_security.mfa.storage import (
    FailureCount,
    StoredBackupCode,
    StoredChallenge,
    StoredStepUp,
    _check_window,
)
from storno_security.stores.memory._base import _check_str, _delete_where

__all__ = [
    "MemoryBackupCodeStore",
    "MemoryMfaChallengeStore",
    "MemoryMfaFailureStore",
    "MemoryStepUpStore",
    "MemoryTotpReplayStore",
]


class MemoryTotpReplayStore:
    """The last accepted TOTP step of each user, in a dictionary guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._steps: dict[str, tuple[int, datetime]] = {}

    def record_step(self, user_id: str, step: int, *, now: datetime, until: datetime) -> bool:
        """See :meth:`TotpReplayStore.record_step`."""
        until = ensure_aware_utc(until)
        with self._lock:
            current = self._steps.get(user_id)
            if current is not None and current[0] >= step:
                return False
            self._steps[user_id] = (step, until)
            return True

    def purge_expired(self, *, now: datetime) -> int:
        """See :meth:`TotpReplayStore.purge_expired`."""
        now = ensure_aware_utc(now)
        return _delete_where(self._lock, self._steps, lambda row: row[1] < now)


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


@attrs.define
class _ChallengeRow:
    challenge: StoredChallenge
    failures: int = 0
    consumed: bool = False

    def live(self, now: datetime) -> bool:
        return (
            not self.consumed
            and self.failures < self.challenge.max_failures
            and now < self.challenge.expires_at
        )


class MemoryMfaChallengeStore:
    """MFA login challenges in a dictionary guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, _ChallengeRow] = {}

    def create_challenge(self, challenge: StoredChallenge) -> None:
        """See :meth:`MfaChallengeStore.create_challenge`."""
        ensure_aware_utc(challenge.expires_at)
        with self._lock:
            if challenge.token_hash in self._rows:
                raise StoreError("challenge token hash exists already", reason="duplicate")
            self._rows[challenge.token_hash] = _ChallengeRow(challenge, challenge.failures)

    def get_challenge(self, token_hash: str, *, now: datetime) -> StoredChallenge | None:
        """See :meth:`MfaChallengeStore.get_challenge`."""
        now = ensure_aware_utc(now)
        with self._lock:
            row = self._rows.get(token_hash)
            if row is None or not row.live(now):
                return None
            return attrs.evolve(row.challenge, failures=row.failures)

    def record_failure(self, token_hash: str, *, now: datetime) -> int | None:
        """See :meth:`MfaChallengeStore.record_failure`."""
        now = ensure_aware_utc(now)
        with self._lock:
            row = self._rows.get(token_hash)
            if row is None or not row.live(now):
                return None
            row.failures += 1
            return row.failures

    def consume_challenge(self, token_hash: str, *, now: datetime) -> StoredChallenge | None:
        """See :meth:`MfaChallengeStore.consume_challenge`."""
        now = ensure_aware_utc(now)
        with self._lock:
            row = self._rows.get(token_hash)
            if row is None or not row.live(now):
                return None
            row.consumed = True
            return attrs.evolve(row.challenge, failures=row.failures)

    def purge_expired(self, *, now: datetime) -> int:
        """See :meth:`MfaChallengeStore.purge_expired`."""
        now = ensure_aware_utc(now)
        return _delete_where(self._lock, self._rows, lambda row: row.challenge.expires_at < now)


class MemoryStepUpStore:
    """Step-up verification tokens in a dictionary guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._grants: dict[str, tuple[StoredStepUp, bool]] = {}

    def create_grant(self, grant: StoredStepUp) -> None:
        """See :meth:`StepUpStore.create_grant`."""
        ensure_aware_utc(grant.expires_at)
        with self._lock:
            if grant.token_hash in self._grants:
                raise StoreError("step-up token hash exists already", reason="duplicate")
            self._grants[grant.token_hash] = (grant, False)

    def consume_grant(
        self, token_hash: str, *, user_id: str, action: str, now: datetime
    ) -> StoredStepUp | None:
        """See :meth:`StepUpStore.consume_grant`."""
        now = ensure_aware_utc(now)
        with self._lock:
            entry = self._grants.get(token_hash)
            if entry is None:
                return None
            grant, used = entry
            if used or grant.user_id != user_id or grant.action != action:
                return None
            if not now < grant.expires_at:
                return None
            self._grants[token_hash] = (grant, True)
            return grant

    def purge_expired(self, *, now: datetime) -> int:
        """See :meth:`StepUpStore.purge_expired`."""
        now = ensure_aware_utc(now)
        return _delete_where(self._lock, self._grants, lambda row: row[0].expires_at < now)


class MemoryMfaFailureStore:
    """Per-user counts of second-factor attempts in a dictionary guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, FailureCount] = {}

    def record_attempt(
        self, user_id: str, *, now: datetime, window_ends_at: datetime
    ) -> FailureCount:
        """See :meth:`MfaFailureStore.record_attempt`."""
        user_id = _check_str("user_id", user_id)
        now, window_ends_at = _check_window(now, window_ends_at)
        with self._lock:
            current = self._counts.get(user_id)
            if current is None or not now < current.window_ends_at:
                counted = FailureCount(failures=1, window_ends_at=window_ends_at)
            else:
                counted = FailureCount(
                    failures=current.failures + 1, window_ends_at=current.window_ends_at
                )
            self._counts[user_id] = counted
            return counted

    def clear_failures(self, user_id: str) -> None:
        """See :meth:`MfaFailureStore.clear_failures`."""
        user_id = _check_str("user_id", user_id)
        with self._lock:
            self._counts.pop(user_id, None)

    def purge_expired(self, *, now: datetime) -> int:
        """See :meth:`MfaFailureStore.purge_expired`."""
        now = ensure_aware_utc(now)
        return _delete_where(self._lock, self._counts, lambda row: row.window_ends_at < now)
