"""What passkeys need from storage, as protocols with the fewest verbs that work.

Two stores:

* :class:`PasskeyChallengeStore` holds the challenges handed out by the ceremonies, keyed by the
  SHA-256 of the challenge. :meth:`~PasskeyChallengeStore.consume` is the one "exactly once"
  operation (PK-2): of any number of concurrent consumers of one challenge, in any number of
  processes, exactly one gets it.
* :class:`PasskeyCredentialStore` holds the registered credentials (PK-3) and each user's random,
  stable user handle. :meth:`~PasskeyCredentialStore.record_use` raises the sign count with one
  conditional update that only lets the count grow, and flags the credential otherwise.

Implementations: :mod:`storno_security.stores.memory` (both), :mod:`storno_security.stores.sql`
(both) and :mod:`storno_security.stores.redis` (challenges). Stores take times from the caller and
never read a clock.
"""

from __future__ import annotations

import enum
import hashlib
from datetime import datetime
from typing import Protocol, runtime_checkable

import attrs

__all__ = [
    "ChallengePurpose",
    "PasskeyChallenge",
    "PasskeyChallengeStore",
    "PasskeyCredential",
    "PasskeyCredentialStore",
    "UseOutcome",
    "credential_key",
]


def credential_key(credential_id: bytes) -> str:
    """The SHA-256 (hex) of a credential id: the fixed-length key stores index it by."""
    if not isinstance(credential_id, bytes):
        raise TypeError(f"credential_id must be bytes, not {type(credential_id).__name__}")
    return hashlib.sha256(credential_id).hexdigest()


class ChallengePurpose(enum.Enum):
    """Which ceremony a challenge was issued for."""

    REGISTRATION = "registration"
    AUTHENTICATION = "authentication"


@attrs.frozen
class PasskeyChallenge:
    """A challenge handed out by a ceremony.

    Attributes:
        challenge_hash: SHA-256 (hex) of the challenge bytes; the challenge itself is not stored.
        purpose: the ceremony it belongs to.
        user_id: the user the ceremony is for; ``None`` for a usernameless login.
        expires_at: after this instant the challenge is refused (PK-2).
    """

    challenge_hash: str
    purpose: ChallengePurpose
    user_id: str | None
    expires_at: datetime


@runtime_checkable
class PasskeyChallengeStore(Protocol):
    """Storage of ceremony challenges. Every method is one atomic operation.

    Besides what each method lists, every method raises ``TypeError`` or ``ValueError`` for a
    bad argument (a wrong type, a naive time, a value no backend can hold: refused, never
    truncated) and ``StoreError`` when the backend fails (``StoreUnavailableError``: it cannot
    be reached; ``CorruptRecordError``: a stored record the library did not write); a call that
    raises wrote nothing.
    """

    def put(self, challenge: PasskeyChallenge, *, now: datetime) -> None:
        """Store a new challenge.

        ``now`` is the caller's clock: a backend that expires keys on its own clock (Redis) keeps
        the challenge for ``expires_at - now``.

        Raises:
            StoreError: a challenge with this hash exists already, or the backend failed.
        """
        ...

    def consume(self, challenge_hash: str, *, now: datetime) -> PasskeyChallenge | None:
        """Atomically remove the challenge and return it, or ``None`` if there is none.

        The record is returned even when it has expired (the caller checks ``expires_at``), unless
        the backend forgot it already. Of any number of concurrent calls with one hash, at most
        one returns the record.

        Raises:
            StoreError: the backend failed.
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
class PasskeyCredential:
    """A registered passkey (PK-3).

    Attributes:
        credential_id: the authenticator's credential id (raw bytes).
        user_id: the owner.
        user_handle: the owner's WebAuthn user handle (random, stable per user).
        public_key: the credential public key, COSE encoded.
        sign_count: the last sign count the authenticator reported.
        transports: transport hints (``"internal"``, ``"usb"``, ``"hybrid"``, ...).
        aaguid: the authenticator model id, as a UUID string.
        backup_eligible: whether the credential may be synced (a multi-device passkey).
        backed_up: whether it was backed up at its last use.
        name: the friendly name the user chose.
        created_at: registration time.
        last_used_at: last successful login, if any.
        flagged_at: when a sign-count regression flagged it as possibly cloned; a flagged
            credential is refused.
    """

    credential_id: bytes
    user_id: str
    user_handle: bytes = attrs.field(repr=False)
    public_key: bytes = attrs.field(repr=False)
    sign_count: int
    transports: tuple[str, ...]
    aaguid: str
    backup_eligible: bool
    backed_up: bool
    name: str
    created_at: datetime
    last_used_at: datetime | None = None
    flagged_at: datetime | None = None

    @property
    def key(self) -> str:
        """SHA-256 (hex) of the credential id."""
        return credential_key(self.credential_id)


class UseOutcome(enum.Enum):
    """What :meth:`PasskeyCredentialStore.record_use` did."""

    #: The sign count grew (or stayed 0 on an authenticator without a counter): recorded.
    RECORDED = "recorded"
    #: The sign count did not grow: the credential is now flagged (PK-3).
    REGRESSED = "regressed"
    #: The credential had been flagged before. Nothing changed.
    FLAGGED = "flagged"
    #: No such credential. Nothing changed.
    UNKNOWN = "unknown"


@runtime_checkable
class PasskeyCredentialStore(Protocol):
    """Storage of registered passkeys and user handles. Every method is one atomic operation.

    Besides what each method lists, every method raises ``TypeError`` or ``ValueError`` for a
    bad argument (a wrong type, a naive time, a value no backend can hold: refused, never
    truncated) and ``StoreError`` when the backend fails (``StoreUnavailableError``: it cannot
    be reached; ``CorruptRecordError``: a stored record the library did not write); a call that
    raises wrote nothing.
    """

    def user_handle(self, user_id: str, *, candidate: bytes) -> bytes:
        """Return the user's handle, storing ``candidate`` as it if the user has none yet.

        Concurrent first calls all return the same handle.

        Raises:
            ValueError: ``candidate`` is not 1 to 64 bytes.
        """
        ...

    def add(self, credential: PasskeyCredential) -> None:
        """Store a new credential.

        Raises:
            StoreError: the credential id is registered already (``reason="duplicate"``), or the
                backend failed.
        """
        ...

    def get(self, credential_id: bytes) -> PasskeyCredential | None:
        """Return the credential with this id, or ``None``."""
        ...

    def list_for_user(self, user_id: str) -> list[PasskeyCredential]:
        """Return the user's credentials, oldest first."""
        ...

    def rename(self, credential_id: bytes, *, user_id: str, name: str) -> bool:
        """Rename the user's credential. Returns ``False`` if the user has no such credential."""
        ...

    def delete(self, credential_id: bytes, *, user_id: str) -> bool:
        """Delete the user's credential. Returns ``False`` if the user has no such credential."""
        ...

    def delete_for_user(self, user_id: str) -> int:
        """Delete every credential of the user (account deletion); return how many."""
        ...

    def record_use(
        self, credential_id: bytes, *, sign_count: int, backed_up: bool, now: datetime
    ) -> UseOutcome:
        """Record a login in one atomic step: only a growing sign count is accepted.

        ``RECORDED`` when the credential is not flagged and ``sign_count`` is greater than the
        stored count, or both are 0 (sets the count, ``backed_up`` and ``last_used_at``);
        otherwise ``REGRESSED`` (the credential is flagged at ``now``), ``FLAGGED`` or
        ``UNKNOWN``. Of concurrent calls with one ``sign_count``, at most one records.

        Raises:
            ValueError: ``sign_count`` is not between 0 and 2**32 - 1.
        """
        ...

    def flag(self, credential_id: bytes, *, now: datetime) -> bool:
        """Flag the credential as possibly cloned. Returns whether it was unflagged before."""
        ...

    def forget_user(self, user_id: str) -> int:
        """Delete every record of the user (account deletion, ACC-7); return how many.

        Raises:
            TypeError: ``user_id`` is not a str.
            StoreError: the backend failed; nothing changed.
        """
        ...
