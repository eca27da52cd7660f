"""What MFA needs from storage, as protocols with the fewest verbs that work.

Five stores, each holding only what must change atomically (the TOTP secret itself is the
application's to keep, like a password hash, and is passed in on every verification):

* :class:`TotpReplayStore`: per user, the last TOTP time step accepted (MFA-2). Its
  :meth:`~TotpReplayStore.record_step` is a compare-and-set: a step is accepted only if it is
  later than every step accepted before, so no step is ever accepted twice.
* :class:`BackupCodeStore`: the bcrypt hashes of a user's backup codes (MFA-3), each with a
  short non-secret hint so a presented code is checked against one hash, not ten.
* :class:`MfaChallengeStore`: pending MFA login challenges (MFA-4), by SHA-256 of the token, with
  an atomic failure counter.
* :class:`StepUpStore`: single-use step-up verification tokens (MFA-6), by SHA-256.
* :class:`MfaFailureStore`: per user, the count of second-factor codes tried in the current
  failure window (NIST SP 800-63B section 5.2.2), raised by one atomic operation per attempt.

Implementations: :mod:`storno_security.stores.memory`, :mod:`storno_security.stores.sql` (all
five) and :mod:`storno_security.stores.redis` (all but backup codes). Stores take times from the
caller and never read a clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

import attrs

from storno_security.clock import ensure_aware_utc

__all__ = [
    "BackupCodeStore",
    "FailureCount",
    "MfaChallengeStore",
    "MfaFailureStore",
    "StepUpStore",
    "StoredBackupCode",
    "StoredChallenge",
    "StoredStepUp",
    "TotpReplayStore",
]


@runtime_checkable
class TotpReplayStore(Protocol):
    """The last accepted TOTP step of each user. Every method is one atomic operation.

    Besides what each method lists, every method raises ``TypeError`` or ``ValueError`` for a
    bad argument (a wrong type, a naive time, a value no backend can hold: refused, never
    truncated) and ``StoreError`` when the backend fails (``StoreUnavailableError``: it cannot
    be reached; ``CorruptRecordError``: a stored record the library did not write); a call that
    raises wrote nothing.
    """

    def record_step(self, user_id: str, step: int, *, now: datetime, until: datetime) -> bool:
        """Atomically make ``step`` the user's last accepted step if it is later than the one
        stored (or none is stored).

        ``until`` is when no code of ``step`` can be accepted any more (the end of the window,
        plus a margin for clock skew); after it the record may be forgotten, since every code
        accepted later has a later step anyway.

        Returns:
            ``True`` if the step was recorded (the code may be accepted); ``False`` if this step
            or a later one had been accepted before (a replay). Of any number of concurrent
            calls for one user and step, exactly one returns ``True``.

        Raises:
            StoreError: the backend failed; nothing changed.
        """
        ...

    def purge_expired(self, *, now: datetime) -> int:
        """Forget records whose ``until`` is before ``now``; return how many."""
        ...

    def forget_user(self, user_id: str) -> int:
        """Delete every record of the user (account deletion, ACC-7); return how many.

        Raises:
            TypeError: ``user_id`` is not a str.
            StoreError: the backend failed; nothing changed.
        """
        ...


@attrs.frozen
class StoredBackupCode:
    """One backup code as stored.

    Attributes:
        code_id: random, non-secret, unique across users and sets.
        hint: the code's first character, non-secret and unique within the set, so a presented
            code is checked against one bcrypt hash.
        code_hash: the bcrypt hash of the whole code (normalised).
    """

    code_id: str
    hint: str
    code_hash: str = attrs.field(repr=False)


@runtime_checkable
class BackupCodeStore(Protocol):
    """The backup codes of each user. Every method is one atomic operation.

    Besides what each method lists, every method raises ``TypeError`` or ``ValueError`` for a
    bad argument (a wrong type, a naive time, a value no backend can hold: refused, never
    truncated) and ``StoreError`` when the backend fails (``StoreUnavailableError``: it cannot
    be reached; ``CorruptRecordError``: a stored record the library did not write); a call that
    raises wrote nothing.
    """

    def replace_codes(
        self, user_id: str, codes: Sequence[StoredBackupCode], *, now: datetime
    ) -> None:
        """Replace the user's whole set with ``codes`` (an empty sequence deletes the set).

        Raises:
            StoreError: a code id exists already, or the backend failed; nothing changed.
        """
        ...

    def find_code(self, user_id: str, hint: str) -> StoredBackupCode | None:
        """Return the user's unused code with this hint, or ``None``."""
        ...

    def use_code(self, user_id: str, code_id: str, *, now: datetime) -> bool:
        """Atomically mark the user's code ``code_id`` used.

        Returns:
            ``True`` for the one call that used it; ``False`` when it is unknown, another user's,
            used already or replaced. Of any number of concurrent calls, at most one returns
            ``True``.
        """
        ...

    def count_unused(self, user_id: str) -> int:
        """How many unused codes the user has left."""
        ...

    def forget_user(self, user_id: str) -> int:
        """Delete every record of the user (account deletion, ACC-7); return how many.

        Raises:
            TypeError: ``user_id`` is not a str.
            StoreError: the backend failed; nothing changed.
        """
        ...


@attrs.frozen
class StoredChallenge:
    """A pending MFA login challenge as stored.

    Attributes:
        token_hash: SHA-256 (hex) of the challenge token; the token is never stored.
        user_id: the user who passed the first factor.
        methods: the second factors the user may answer with.
        created_at: when it was issued.
        expires_at: when it dies.
        max_failures: wrong answers it takes before it dies.
        failures: wrong answers so far.
    """

    token_hash: str
    user_id: str
    methods: tuple[str, ...]
    created_at: datetime
    expires_at: datetime
    max_failures: int
    failures: int = 0


@runtime_checkable
class MfaChallengeStore(Protocol):
    """Pending MFA login challenges. Every method is one atomic operation.

    A challenge is *live* while ``now < expires_at``, ``failures < max_failures`` and it has not
    been consumed.

    Besides what each method lists, every method raises ``TypeError`` or ``ValueError`` for a
    bad argument (a wrong type, a naive time, a value no backend can hold: refused, never
    truncated) and ``StoreError`` when the backend fails (``StoreUnavailableError``: it cannot
    be reached; ``CorruptRecordError``: a stored record the library did not write); a call that
    raises wrote nothing.
    """

    def create_challenge(self, challenge: StoredChallenge) -> None:
        """Store a new challenge.

        Raises:
            StoreError: the token hash exists already, or the backend failed.
        """
        ...

    def get_challenge(self, token_hash: str, *, now: datetime) -> StoredChallenge | None:
        """Return the challenge if it is live, else ``None``. Changes nothing."""
        ...

    def record_failure(self, token_hash: str, *, now: datetime) -> int | None:
        """Atomically count one wrong answer against a live challenge.

        Returns:
            The number of failures after this one (the challenge is dead once it reaches
            ``max_failures``), or ``None`` when the challenge was not live (nothing counted).
            Of any number of concurrent calls, at most ``max_failures`` are counted.
        """
        ...

    def consume_challenge(self, token_hash: str, *, now: datetime) -> StoredChallenge | None:
        """Atomically end a live challenge after a right answer.

        Returns:
            The challenge for the one call that consumed it; ``None`` when it was not live.
        """
        ...

    def purge_expired(self, *, now: datetime) -> int:
        """Delete challenges whose ``expires_at`` is before ``now``; return how many."""
        ...

    def forget_user(self, user_id: str) -> int:
        """Delete every record of the user (account deletion, ACC-7); return how many.

        Raises:
            TypeError: ``user_id`` is not a str.
            StoreError: the backend failed; nothing changed.
        """
        ...


@attrs.frozen
class StoredStepUp:
    """A step-up verification token as stored.

    Attributes:
        token_hash: SHA-256 (hex) of the token; the token is never stored.
        user_id: the user it was issued to.
        action: the one action it allows (e.g. ``"apikey.create"``).
        method: the second factor behind it (``"totp"``, ``"backup_code"``, ``"passkey"``).
        created_at: when it was issued.
        expires_at: when it dies.
    """

    token_hash: str
    user_id: str
    action: str
    method: str
    created_at: datetime
    expires_at: datetime


@runtime_checkable
class StepUpStore(Protocol):
    """Single-use step-up verification tokens. Every method is one atomic operation.

    Besides what each method lists, every method raises ``TypeError`` or ``ValueError`` for a
    bad argument (a wrong type, a naive time, a value no backend can hold: refused, never
    truncated) and ``StoreError`` when the backend fails (``StoreUnavailableError``: it cannot
    be reached; ``CorruptRecordError``: a stored record the library did not write); a call that
    raises wrote nothing.
    """

    def create_grant(self, grant: StoredStepUp) -> None:
        """Store a new step-up token.

        Raises:
            StoreError: the token hash exists already, or the backend failed.
        """
        ...

    def consume_grant(
        self, token_hash: str, *, user_id: str, action: str, now: datetime
    ) -> StoredStepUp | None:
        """Atomically use the token if it is unused, unexpired (``now < expires_at``), and
        ``user_id``'s for ``action``.

        Returns:
            The grant for the one call that used it; ``None`` otherwise (a token of another
            user or action is left as it was).
        """
        ...

    def purge_expired(self, *, now: datetime) -> int:
        """Delete tokens whose ``expires_at`` is before ``now``; return how many."""
        ...

    def forget_user(self, user_id: str) -> int:
        """Delete every record of the user (account deletion, ACC-7); return how many.

        Raises:
            TypeError: ``user_id`` is not a str.
            StoreError: the backend failed; nothing changed.
        """
        ...


@attrs.frozen
class FailureCount:
    """A user's count of second-factor attempts in the current failure window.

    Attributes:
        failures: attempts counted in the window, this one included (a right code clears them).
        window_ends_at: when the window ends; the next attempt after it starts a new one.
    """

    failures: int
    window_ends_at: datetime


@runtime_checkable
class MfaFailureStore(Protocol):
    """Per-user counts of second-factor attempts. Every method is one atomic operation.

    A user's window is *live* while ``now < window_ends_at``.

    Besides what each method lists, every method raises ``TypeError`` or ``ValueError`` for a
    bad argument (a wrong type, a naive time, a value no backend can hold: refused, never
    truncated) and ``StoreError`` when the backend fails (``StoreUnavailableError``: it cannot
    be reached; ``CorruptRecordError``: a stored record the library did not write); a call that
    raises wrote nothing.
    """

    def record_attempt(
        self, user_id: str, *, now: datetime, window_ends_at: datetime
    ) -> FailureCount:
        """Atomically count one attempt of ``user_id``.

        If the user has a live window, its count goes up by one and its end stays; otherwise a
        new window starts with a count of 1 and ends at ``window_ends_at``.

        Returns:
            The count after this attempt and the end of its window. Of any number of
            concurrent calls for one user within one window, each gets a count of its own:
            1, 2, 3, ... with none skipped or repeated.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: a time is naive, or ``window_ends_at`` is not after ``now``.
            StoreError: the backend failed; nothing was counted.
        """
        ...

    def clear_failures(self, user_id: str) -> None:
        """Forget the user's count (after a right code). Clearing no count is not an error.

        Raises:
            TypeError: ``user_id`` is not a str.
            StoreError: the backend failed; the count stays.
        """
        ...

    def purge_expired(self, *, now: datetime) -> int:
        """Forget windows that ended before ``now``; return how many."""
        ...

    def forget_user(self, user_id: str) -> int:
        """Delete every record of the user (account deletion, ACC-7); return how many.

        Raises:
            TypeError: ``user_id`` is not a str.
            StoreError: the backend failed; nothing changed.
        """
        ...


def _check_window(now: datetime, window_ends_at: datetime) -> tuple[datetime, datetime]:
    """For the stores: both times as aware UTC, and the window not empty.

    Raises:
        TypeError: a time is not a datetime.
        ValueError: a time is naive, or ``window_ends_at`` is not after ``now``.
    """
    now, window_ends_at = ensure_aware_utc(now), ensure_aware_utc(window_ends_at)
    if not now < window_ends_at:
        raise ValueError("window_ends_at must be after now")
    return now, window_ends_at
