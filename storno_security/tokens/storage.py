"""What token sessions need from storage, as protocols with the fewest verbs that work.

Two stores:

* :class:`RefreshFamilyStore` holds refresh-token families (one per login) and the SHA-256 of
  every refresh token ever issued in them, so a rotated token presented again is recognised as
  reuse (REF-3). Its :meth:`~RefreshFamilyStore.rotate` is the one "exactly once" operation.
* :class:`SessionStateStore` holds what every access-token verification must consult: the user's
  session epoch (REF-4) and the ids of revoked sessions (families), so a revoked login's access
  tokens die at once. It is the hot path: one round trip per check.

Implementations: :mod:`storno_security.stores.memory`, :mod:`storno_security.stores.sql`
(families and state) and :mod:`storno_security.stores.redis` (state). Stores hold hashes only,
never a refresh token itself; they take times from the caller and never read a clock.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

import attrs

__all__ = [
    "RefreshFamily",
    "RefreshFamilyStore",
    "Rotation",
    "RotationOutcome",
    "SessionState",
    "SessionStateReader",
    "SessionStateStore",
]


@attrs.frozen
class RefreshFamily:
    """One login's chain of refresh tokens.

    Attributes:
        family_id: random, non-secret id; it is the ``sid`` claim of the access tokens.
        user_id: the owner.
        created_at: the login time.
        expires_at: absolute end of the family (REF-1): rotation never extends it.
    """

    family_id: str
    user_id: str
    created_at: datetime
    expires_at: datetime


class RotationOutcome(enum.Enum):
    """What :meth:`RefreshFamilyStore.rotate` did."""

    #: The presented token was the family's live token: it is now used and the new one is live.
    ROTATED = "rotated"
    #: No token with this hash exists. Nothing changed.
    UNKNOWN = "unknown"
    #: The token belongs to another user than ``expected_user_id``. Nothing changed.
    WRONG_USER = "wrong_user"
    #: The family's absolute lifetime is over. Nothing changed.
    EXPIRED = "expired"
    #: The token had been used already: the family is now revoked (REF-3).
    REUSED = "reused"
    #: The family had been revoked before (logout, password change, earlier reuse).
    REVOKED = "revoked"
    #: The just-rotated token came back within the grace while its successor was unused (a
    #: retry after a lost reply, REF-5): the successor is now dead and ``new_hash`` is live.
    REISSUED = "reissued"


@attrs.frozen
class Rotation:
    """The result of a rotation attempt.

    Attributes:
        outcome: what happened.
        family: the family concerned; ``None`` when ``outcome`` is ``UNKNOWN`` or ``WRONG_USER``
            (so a caller cannot learn about another user's family).
    """

    outcome: RotationOutcome
    family: RefreshFamily | None = None


@runtime_checkable
class RefreshFamilyStore(Protocol):
    """Storage of refresh-token families. Every method is one atomic operation.

    Besides what each method lists, every method raises ``TypeError`` or ``ValueError`` for a
    bad argument (a wrong type, a naive time, a value no backend can hold: refused, never
    truncated) and ``StoreError`` when the backend fails (``StoreUnavailableError``: it cannot
    be reached; ``CorruptRecordError``: a stored record the library did not write); a call that
    raises wrote nothing.
    """

    def create_family(self, family: RefreshFamily, *, token_hash: str) -> None:
        """Store a new family whose live token has SHA-256 ``token_hash`` (hex).

        Raises:
            StoreError: the family id or token hash exists already, or the backend failed.
        """
        ...

    def rotate(
        self,
        *,
        presented_hash: str,
        new_hash: str,
        now: datetime,
        expected_user_id: str | None = None,
        grace: timedelta | None = None,
    ) -> Rotation:
        """Atomically retire the token with hash ``presented_hash`` and make ``new_hash`` live.

        Checked in this order, the first match wins: unknown hash (``UNKNOWN``); owner other
        than ``expected_user_id`` when given (``WRONG_USER``); ``expires_at <= now``
        (``EXPIRED``); token used already: ``REISSUED`` when ``grace`` is given, the token was
        rotated (not reissued) less than ``grace`` before ``now``, the family is not revoked
        and the successor that rotation made is still unused (the successor is marked used and
        ``new_hash`` is live, REF-5), else ``REUSED`` (the family is revoked in the same atomic
        step if it was not, REF-3); family revoked (``REVOKED``); else ``ROTATED``.

        Of any number of concurrent calls with the same live ``presented_hash``, exactly one
        returns ``ROTATED``. A rotation can be retried once: of any number of presentations of
        the just-rotated token (concurrent or not), at most one returns ``REISSUED``; the others
        find its successor used, which is reuse (``REUSED``, the family revoked), and so does
        the holder of the replaced successor.

        Raises:
            StoreError: ``new_hash`` exists already (``reason="duplicate"``), or the backend
                failed; nothing changed.
        """
        ...

    def revoke_by_token(
        self, token_hash: str, *, now: datetime, expected_user_id: str
    ) -> RefreshFamily | None:
        """Revoke the family of the token with this hash (logout), if it is ``expected_user_id``'s.

        Returns:
            The family, or ``None`` when the hash is unknown or belongs to another user (then
            nothing changed). Revoking a revoked family again is not an error.
        """
        ...

    def revoke_family(self, family_id: str, *, now: datetime) -> bool:
        """Revoke one family. Returns whether it was live before."""
        ...

    def revoke_user_families(self, user_id: str, *, now: datetime) -> list[str]:
        """Revoke every live family of the user; return their ids."""
        ...

    def live_families(self, user_id: str, *, now: datetime) -> list[RefreshFamily]:
        """The user's families that are neither revoked nor over at ``now`` (its sessions),
        oldest first."""
        ...

    def purge_expired(self, *, now: datetime) -> int:
        """Delete families (and their token hashes) whose ``expires_at`` is before ``now``.

        Returns the number of families deleted.
        """
        ...

    def forget_user(self, user_id: str) -> int:
        """Delete every family of the user and its token hashes (ACC-7); return how many rows.

        Raises:
            TypeError: ``user_id`` is not a str.
            StoreError: the backend failed; nothing changed.
        """
        ...


@attrs.frozen
class SessionState:
    """What an access-token check needs.

    Attributes:
        epoch: the user's current session epoch (0 for a user never bumped).
        revoked: whether the session (family) has been revoked.
    """

    epoch: int
    revoked: bool


class SessionStateReader(Protocol):
    """A function that reads what :meth:`SessionStateStore.session_state` reads (the bound
    method itself, or a read that brings more records in the same statement)."""

    def __call__(self, *, user_id: str, session_id: str) -> SessionState: ...


@runtime_checkable
class SessionStateStore(Protocol):
    """Per-user session epochs and revoked-session markers. One round trip per method.

    Besides what each method lists, every method raises ``TypeError`` or ``ValueError`` for a
    bad argument (a wrong type, a naive time, a value no backend can hold: refused, never
    truncated) and ``StoreError`` when the backend fails (``StoreUnavailableError``: it cannot
    be reached; ``CorruptRecordError``: a stored record the library did not write); a call that
    raises wrote nothing.
    """

    def session_state(self, *, user_id: str, session_id: str) -> SessionState:
        """Return the user's epoch and whether ``session_id`` is revoked, in one read."""
        ...

    def current_epoch(self, user_id: str) -> int:
        """Return the user's epoch (0 if never bumped)."""
        ...

    def bump_epoch(self, user_id: str) -> int:
        """Atomically increase the user's epoch by one and return the new value."""
        ...

    def revoke_session(self, session_id: str, *, now: datetime, until: datetime) -> None:
        """Mark a session revoked at least until ``until`` (after which its access tokens have
        expired anyway, so the marker may be forgotten). Idempotent; a later ``until`` wins.

        ``now`` is the caller's clock: a backend that expires keys on its own clock (Redis) uses
        ``until - now`` as a time-to-live, so clock skew between hosts cannot drop a marker early.
        """
        ...

    def purge_expired(self, *, now: datetime) -> int:
        """Forget revoked-session markers whose ``until`` is before ``now``; return how many."""
        ...

    def forget_user(self, user_id: str) -> int:
        """Delete the user's epoch (ACC-7; markers are keyed by session, not user); return how
        many records. A user without an epoch is at epoch 0 again, where old access tokens
        verify: call it only once every access token of the user has expired (at the purge).

        Raises:
            TypeError: ``user_id`` is not a str.
            StoreError: the backend failed; nothing changed.
        """
        ...
