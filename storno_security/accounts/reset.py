"""Password-reset tokens (ACC-2): single use, stored hashed, dead after one hour.

:meth:`PasswordResetTokens.issue` makes ``rst_`` + 256 random bits (base64url), stores only its
SHA-256 and returns the token once, for the reset link. :meth:`PasswordResetTokens.consume` is one
atomic store operation: of any number of concurrent uses exactly one wins, and the win kills
every other outstanding token of the user. Every failure is one opaque
:class:`~storno_security.errors.InvalidResetTokenError`.

Typical wiring (the server keeps "forgot password" answering the same whether or not the email
exists; see ``docs/accounts.md``)::

    resets = PasswordResetTokens(MemoryResetTokenStore(), clock=SystemClock())
    issued = resets.issue(user.id)           # mail issued.token in a link
    user_id = resets.consume(request_token)  # then set the new password
    sessions.revoke_all(user_id, reason="password_reset")  # every session ends (REF-4)
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final

import attrs

from storno_security._encoding import b64url_encode
from storno_security._validators import between, int_between
from storno_security.accounts.storage import ResetTokenStore
from storno_security.clock import Clock
from storno_security.errors import InvalidResetTokenError

__all__ = [
    "RESET_TOKEN_PREFIX",
    "IssuedResetToken",
    "PasswordResetPolicy",
    "PasswordResetTokens",
    "hash_reset_token",
]

#: What every reset token starts with, so that secret scanners (and people) can spot one.
RESET_TOKEN_PREFIX: Final = "rst_"  # noqa: S105 - a public marker, not a secret

_MIN_TOKEN_BYTES: Final = 32
_MAX_TOKEN_BYTES: Final = 64
# base64url without padding of 32 to 64 bytes: 43 to 86 characters. Any length in between is
# accepted, so tokens issued under an earlier policy keep working until they expire.
_TOKEN_RE: Final = re.compile(r"rst_[A-Za-z0-9_-]{43,86}")


@attrs.frozen(kw_only=True)
class PasswordResetPolicy:
    """How password-reset tokens are made and how long they live.

    Attributes:
        lifetime: how long a token lives; default 1 hour (ACC-2), from 1 minute to 1 hour.
        token_bytes: random bytes per token; default 32 (256 bits), at least 32, at most 64.
        max_active_per_user: live tokens a user may have at once; issuing one more deletes the
            oldest. Default 3, from 1 to 10: a user who asks twice still gets a working link,
            and no one can fill the store with one user's tokens.
    """

    lifetime: timedelta = attrs.field(
        default=timedelta(hours=1), validator=between(timedelta(minutes=1), timedelta(hours=1))
    )
    token_bytes: int = attrs.field(
        default=_MIN_TOKEN_BYTES, validator=int_between(_MIN_TOKEN_BYTES, _MAX_TOKEN_BYTES)
    )
    max_active_per_user: int = attrs.field(default=3, validator=int_between(1, 10))


@attrs.frozen(kw_only=True)
class IssuedResetToken:
    """A new password-reset token, to put in the link mailed to the user.

    Attributes:
        token: the token (secret; only its SHA-256 is stored; shown once).
        user_id: whose password it resets.
        expires_at: when it dies.
    """

    token: str = attrs.field(repr=False)
    user_id: str
    expires_at: datetime


def _new_reset_token(token_bytes: int, *, random_bytes: Callable[[int], bytes]) -> str:
    """``rst_`` + the unpadded base64url of ``token_bytes`` bytes from ``random_bytes``.

    :meth:`PasswordResetTokens.issue` passes :func:`secrets.token_bytes`; the known-answer
    tests pass fixed bytes, and a recorder that checks how many are asked for.

    Raises:
        ValueError: ``random_bytes`` returned other than ``token_bytes`` bytes.
    """
    raw = random_bytes(token_bytes)
    if not isinstance(raw, bytes) or len(raw) != token_bytes:
        raise ValueError(f"expected {token_bytes} random bytes")
    return RESET_TOKEN_PREFIX + b64url_encode(raw)


def hash_reset_token(token: object) -> str:
    """The SHA-256 (lowercase hex) under which a reset token is stored.

    Raises:
        InvalidResetTokenError: ``token`` is not a str of the reset-token shape
            (``reason="malformed"``).
    """
    if not isinstance(token, str) or _TOKEN_RE.fullmatch(token) is None:
        raise InvalidResetTokenError(reason="malformed")
    return hashlib.sha256(token.encode("ascii")).hexdigest()


class PasswordResetTokens:
    """Issues, uses and revokes password-reset tokens (ACC-2).

    Args:
        store: where token hashes live.
        clock: the time source.
        policy: lifetime, token size, live tokens per user; defaults to
            ``PasswordResetPolicy()``.

    Raises:
        TypeError: ``policy`` is not a :class:`PasswordResetPolicy`.

    Thread-safe (the store does the atomic work).
    """

    def __init__(
        self,
        store: ResetTokenStore,
        *,
        clock: Clock,
        policy: PasswordResetPolicy | None = None,
    ) -> None:
        if policy is None:
            policy = PasswordResetPolicy()
        elif not isinstance(policy, PasswordResetPolicy):
            raise TypeError("policy must be a PasswordResetPolicy")
        self.policy = policy
        self._store = store
        self._clock = clock

    def __repr__(self) -> str:
        return f"PasswordResetTokens(lifetime={self.policy.lifetime})"

    def issue(self, user_id: str) -> IssuedResetToken:
        """Make a token for ``user_id``, valid for ``policy.lifetime``.

        If the user has ``policy.max_active_per_user`` live tokens already, the oldest dies, in
        the same atomic store operation.

        Raises:
            TypeError: ``user_id`` is not a str.
            ValueError: ``user_id`` is empty.
            StoreError: the store failed; no token exists.
        """
        user_id = _check_user_id(user_id)
        token = _new_reset_token(self.policy.token_bytes, random_bytes=secrets.token_bytes)
        now = self._clock.now()
        expires_at = now + self.policy.lifetime
        self._store.add(
            hash_reset_token(token),
            user_id=user_id,
            created_at=now,
            expires_at=expires_at,
            max_active=self.policy.max_active_per_user,
        )
        return IssuedResetToken(token=token, user_id=user_id, expires_at=expires_at)

    def consume(self, token: str) -> str:
        """Use a token, atomically, once; every other outstanding token of its user dies too.

        Afterwards the caller sets the new password and revokes the user's sessions.

        Returns:
            The id of the user whose password may now be reset.

        Raises:
            InvalidResetTokenError: the token is malformed or not a str (``reason="malformed"``,
                refused before any store lookup), unknown, used, revoked or killed by a sibling
                (``"unknown_or_used"``), or expired (``"expired"``). One message for all.
            StoreError: the store failed; the token was not used.
        """
        token_hash = hash_reset_token(token)
        used = self._store.consume(token_hash, now=self._clock.now())
        if used.user_id is not None:
            return used.user_id
        raise InvalidResetTokenError(reason="expired" if used.expired else "unknown_or_used")

    def revoke_all(self, user_id: str) -> int:
        """Kill every outstanding token of the user (after a password change, an account
        deletion, or when the user says they did not ask for a reset).

        Returns:
            How many tokens were deleted.

        Raises:
            TypeError: ``user_id`` is not a str.
            ValueError: ``user_id`` is empty.
            StoreError: the store failed; nothing changed.
        """
        return self._store.revoke_all(_check_user_id(user_id))

    def purge_expired(self) -> int:
        """Delete the tokens that are dead by now (a housekeeping job); return how many.

        Raises:
            StoreError: the store failed; nothing changed.
        """
        return self._store.purge_expired(now=self._clock.now())


def _check_user_id(user_id: object) -> str:
    if not isinstance(user_id, str):
        raise TypeError(f"user_id must be a str, not {type(user_id).__name__}")
    if not user_id:
        raise ValueError("user_id must not be empty")
    return user_id
