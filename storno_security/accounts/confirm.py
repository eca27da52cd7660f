"""Email-confirmation tokens (ACC-5): single use, stored hashed, dead after 24 hours.

:meth:`EmailConfirmationTokens.issue` makes ``cnf_`` + 256 random bits (base64url) for one user
and address, stores only its SHA-256 and returns the token once, for the confirmation link.
:meth:`EmailConfirmationTokens.consume` is one atomic store operation: of any number of
concurrent uses exactly one wins, and the win kills every other outstanding token of the user.
Every failure is one opaque :class:`~storno_security.errors.InvalidConfirmationTokenError`.

Typical wiring (resending answers the same for every address; see ``docs/accounts.md``)::

    confirmations = EmailConfirmationTokens(MemoryEmailConfirmationStore(), clock=SystemClock())
    issued = confirmations.issue(user.id, email=user.email)  # mail issued.token in a link
    confirmed = confirmations.consume(token_from_link)
    # then mark confirmed.email confirmed for confirmed.user_id, if it is still the address
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta
from typing import Final

import attrs

from storno_security._validators import between, int_between
from storno_security.accounts.storage import EmailConfirmationStore
from storno_security.clock import Clock
from storno_security.errors import InvalidConfirmationTokenError

__all__ = [
    "CONFIRMATION_TOKEN_PREFIX",
    "ConfirmedAddress",
    "EmailConfirmationPolicy",
    "EmailConfirmationTokens",
    "IssuedConfirmationToken",
    "hash_confirmation_token",
]

#: What every confirmation token starts with, so that secret scanners (and people) spot one.
CONFIRMATION_TOKEN_PREFIX: Final = "cnf_"  # noqa: S105 - a public marker, not a secret

_TOKEN_BYTES: Final = 32
_TOKEN_RE: Final = re.compile(r"cnf_[A-Za-z0-9_-]{43}")


@attrs.frozen(kw_only=True)
class EmailConfirmationPolicy:
    """How long confirmation tokens live and how many a user may have.

    Attributes:
        lifetime: default 24 hours (ACC-5), from 5 minutes to 7 days.
        max_active: live tokens a user may have at once; issuing one more deletes the oldest.
            Default 3, from 1 to 10.
    """

    lifetime: timedelta = attrs.field(
        default=timedelta(hours=24), validator=between(timedelta(minutes=5), timedelta(days=7))
    )
    max_active: int = attrs.field(default=3, validator=int_between(1, 10))


@attrs.frozen(kw_only=True)
class IssuedConfirmationToken:
    """A new confirmation token, to put in the link mailed to ``email``.

    Attributes:
        token: the token (secret; only its SHA-256 is stored; shown once).
        user_id: whose address it confirms.
        email: the address it confirms.
        expires_at: when it dies.
    """

    token: str = attrs.field(repr=False)
    user_id: str
    email: str
    expires_at: datetime


@attrs.frozen
class ConfirmedAddress:
    """What a used token proves: ``user_id`` received mail at ``email``."""

    user_id: str
    email: str


def hash_confirmation_token(token: object) -> str:
    """The SHA-256 (lowercase hex) under which a confirmation token is stored.

    Raises:
        InvalidConfirmationTokenError: ``token`` is not a str of the token's shape
            (``reason="malformed"``).
    """
    if not isinstance(token, str) or _TOKEN_RE.fullmatch(token) is None:
        raise InvalidConfirmationTokenError(reason="malformed")
    return hashlib.sha256(token.encode("ascii")).hexdigest()


class EmailConfirmationTokens:
    """Issues, uses and revokes email-confirmation tokens (ACC-5).

    Args:
        store: where token hashes live.
        clock: the time source.
        policy: defaults to ``EmailConfirmationPolicy()``.

    Raises:
        TypeError: ``policy`` is not an :class:`EmailConfirmationPolicy`.

    Thread-safe (the store does the atomic work).
    """

    def __init__(
        self,
        store: EmailConfirmationStore,
        *,
        clock: Clock,
        policy: EmailConfirmationPolicy | None = None,
    ) -> None:
        if policy is None:
            policy = EmailConfirmationPolicy()
        elif not isinstance(policy, EmailConfirmationPolicy):
            raise TypeError("policy must be an EmailConfirmationPolicy")
        self.policy = policy
        self._store = store
        self._clock = clock

    def __repr__(self) -> str:
        return f"EmailConfirmationTokens(lifetime={self.policy.lifetime})"

    def issue(self, user_id: str, *, email: str) -> IssuedConfirmationToken:
        """Make a token proving ``email`` for ``user_id``, valid for ``policy.lifetime``; the
        user's oldest live token dies if they have ``policy.max_active`` already (atomically).

        Raises:
            TypeError: ``user_id`` or ``email`` is not a str.
            ValueError: either is empty.
            StoreError: the store failed; no token exists.
        """
        user_id, email = _text("user_id", user_id), _text("email", email)
        token = CONFIRMATION_TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
        now = self._clock.now()
        expires_at = now + self.policy.lifetime
        self._store.add(
            hash_confirmation_token(token),
            user_id=user_id,
            email=email,
            created_at=now,
            expires_at=expires_at,
            max_active=self.policy.max_active,
        )
        return IssuedConfirmationToken(
            token=token, user_id=user_id, email=email, expires_at=expires_at
        )

    def consume(self, token: str) -> ConfirmedAddress:
        """Use a token, atomically, once; every other outstanding token of its user dies too.

        Returns:
            The user and the address the token was issued for. The caller confirms the address
            only if it is still the user's (else ``reason="address_changed"`` is theirs to raise).

        Raises:
            InvalidConfirmationTokenError: malformed or not a str (``reason="malformed"``,
                before any store lookup), unknown, used, revoked or killed by a sibling
                (``"unknown_or_used"``), or expired (``"expired"``). One message for all.
            StoreError: the store failed; the token was not used.
        """
        used = self._store.consume(hash_confirmation_token(token), now=self._clock.now())
        if used.user_id is not None and used.email is not None:
            return ConfirmedAddress(used.user_id, used.email)
        raise InvalidConfirmationTokenError(
            reason="expired" if used.expired else "unknown_or_used"
        )

    def revoke_all(self, user_id: str) -> int:
        """Kill every outstanding token of the user (the address changed, the account went).

        Raises:
            TypeError: ``user_id`` is not a str.
            ValueError: ``user_id`` is empty.
            StoreError: the store failed; nothing changed.
        """
        return self._store.revoke_all(_text("user_id", user_id))

    def purge_expired(self) -> int:
        """Delete the tokens that are dead by now (a housekeeping job); return how many.

        Raises:
            StoreError: the store failed; nothing changed.
        """
        return self._store.purge_expired(now=self._clock.now())


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    return value
