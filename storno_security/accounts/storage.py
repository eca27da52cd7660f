"""What password reset needs from storage: one protocol with the fewest verbs that work.

A store keeps one row per outstanding reset token: the SHA-256 (hex) of the token, never the
token (ACC-2), the user it resets, when it was issued and when it dies. Using a token is one
atomic operation that deletes it and every other token of its user, so a token works once and a
successful reset kills every older link.

Implementations: :mod:`storno_security.stores.memory` and :mod:`storno_security.stores.sql`.
Stores take times from the caller and never read a clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

import attrs

__all__ = [
    "ConfirmationUse",
    "EmailConfirmationStore",
    "ResetTokenStore",
    "ResetTokenUse",
]

#: The most live tokens a store keeps per user, whatever ``max_active`` asks.
MAX_ACTIVE_LIMIT = 10


@attrs.frozen
class ResetTokenUse:
    """What :meth:`ResetTokenStore.consume` did.

    Attributes:
        user_id: the user whose token this call used (this call won), or ``None``.
        expired: ``True`` when nothing was used because the token is known, unused, and its
            time is up; ``False`` otherwise (never ``True`` together with a ``user_id``).
    """

    user_id: str | None = None
    expired: bool = False


@runtime_checkable
class ResetTokenStore(Protocol):
    """Outstanding password-reset tokens, by SHA-256. Every method is one atomic operation.

    A token is *live* while ``now < expires_at`` and it has been neither used nor revoked.

    Besides what each method lists, every method raises ``TypeError`` or ``ValueError`` for a
    bad argument (a wrong type, a naive time, a value no backend can hold: refused, never
    truncated) and ``StoreError`` when the backend fails (``StoreUnavailableError``: it cannot
    be reached; ``CorruptRecordError``: a stored record the library did not write); a call that
    raises wrote nothing.
    """

    def add(
        self,
        token_hash: str,
        *,
        user_id: str,
        created_at: datetime,
        expires_at: datetime,
        max_active: int,
    ) -> None:
        """Store a new token and, in the same atomic operation, leave the user at most
        ``max_active`` live tokens: the oldest others are deleted (so are the user's tokens
        that are dead at ``created_at``).

        Raises:
            ValueError: ``expires_at`` is not after ``created_at``.
            StoreError: the hash exists already (``reason="duplicate"``), or the backend
                failed; nothing was written.
        """
        ...

    def consume(self, token_hash: str, *, now: datetime) -> ResetTokenUse:
        """Use a live token: delete it and every other token of its user, atomically.

        Returns:
            The user id for the one call that used it. Of any number of concurrent calls with
            one hash, at most one gets a user id. A token that is unknown, used, revoked or
            deleted with a sibling gives ``ResetTokenUse()``; one that is known but not live at
            ``now`` (expired) gives ``ResetTokenUse(expired=True)`` and is left as it was.

        Raises:
            StoreError: the backend failed; nothing changed.
        """
        ...

    def revoke_all(self, user_id: str) -> int:
        """Delete every token of the user (after a password change or account deletion).

        Returns:
            How many were deleted.

        Raises:
            StoreError: the backend failed; nothing changed.
        """
        ...

    def purge_expired(self, *, now: datetime) -> int:
        """Delete the tokens whose ``expires_at`` is not after ``now``; return how many.

        Raises:
            StoreError: the backend failed; nothing changed.
        """
        ...

    def forget_user(self, user_id: str) -> int:
        """Delete every record of the user (account deletion, ACC-7); return how many.

        Raises:
            TypeError: ``user_id`` is not a str.
            StoreError: the backend failed; nothing changed.
        """
        ...


@attrs.frozen
class ConfirmationUse:
    """What :meth:`EmailConfirmationStore.consume` did.

    Attributes:
        user_id: the user whose token this call used (this call won), or ``None``.
        email: the address the token was issued for (with ``user_id``), else ``None``.
        expired: ``True`` when nothing was used because the token is known, unused, and its
            time is up.
    """

    user_id: str | None = None
    email: str | None = None
    expired: bool = False


@runtime_checkable
class EmailConfirmationStore(Protocol):
    """Outstanding email-confirmation tokens (ACC-5), by SHA-256. Every method is one atomic
    operation. A token is *live* while ``now < expires_at`` and it has been neither used nor
    revoked.

    Besides what each method lists, every method raises ``TypeError`` or ``ValueError`` for a
    bad argument (a wrong type, a naive time, a value no backend can hold: refused, never
    truncated) and ``StoreError`` when the backend fails (``StoreUnavailableError``: it cannot
    be reached; ``CorruptRecordError``: a stored record the library did not write); a call that
    raises wrote nothing.
    """

    def add(
        self,
        token_hash: str,
        *,
        user_id: str,
        email: str,
        created_at: datetime,
        expires_at: datetime,
        max_active: int,
    ) -> None:
        """Store a new token for ``email`` and leave the user at most ``max_active`` live
        tokens (the oldest others are deleted), in one atomic operation.

        Raises:
            StoreError: the hash exists already (``reason="duplicate"``), or the backend
                failed; nothing was written.
        """
        ...

    def consume(self, token_hash: str, *, now: datetime) -> ConfirmationUse:
        """Use a live token: delete it and every other token of its user, atomically. Of any
        number of concurrent calls with one hash, at most one gets a user id.

        Raises:
            StoreError: the backend failed; nothing changed.
        """
        ...

    def revoke_all(self, user_id: str) -> int:
        """Delete every token of the user (the address changed); return how many.

        Raises:
            StoreError: the backend failed; nothing changed.
        """
        ...

    def forget_user(self, user_id: str) -> int:
        """Delete every record of the user (ACC-7); return how many.

        Raises:
            StoreError: the backend failed; nothing changed.
        """
        ...

    def purge_expired(self, *, now: datetime) -> int:
        """Delete the tokens whose ``expires_at`` is not after ``now``; return how many.

        Raises:
            StoreError: the backend failed; nothing changed.
        """
        ...


def _check_max_active(max_active: object) -> int:
    """``max_active`` of :meth:`ResetTokenStore.add`: an int from 1 to :data:`MAX_ACTIVE_LIMIT`.

    Raises:
        TypeError: not an int (or a bool).
        ValueError: out of range.
    """
    if isinstance(max_active, bool) or not isinstance(max_active, int):
        raise TypeError("max_active must be an int")
    if not 1 <= max_active <= MAX_ACTIVE_LIMIT:
        raise ValueError(f"max_active must be between 1 and {MAX_ACTIVE_LIMIT}")
    return max_active
