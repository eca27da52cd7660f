"""MFA login challenges (MFA-4, MFA-5).

When a user with MFA passes the first factor (password, Google), the login answers with a
challenge instead of tokens::

    {"mfa_required": true, "mfa_token": "...", "mfa_methods": ["totp", "backup_code"]}

The token is 256 random bits, stored only as SHA-256, bound to the user, and lives 5 minutes.
Each wrong answer (a wrong code, or a passkey assertion the passkeys capability refused) is
counted by one atomic store operation; the fifth kills the challenge, even when many answers
arrive at once from several processes. A right answer consumes it, atomically,
and yields a :class:`VerifiedChallenge` naming the user and the factor that passed, after which
the application starts the session.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import attrs

from storno_security.errors import (
    InvalidMfaChallengeError,
    InvalidMfaCodeError,
    InvalidPasskeyError,
)
from storno_security.mfa._common import _PolicyStoreService
from storno_security.mfa._tokens import hash_token, new_token
from storno_security.mfa.factors import DEFAULT_METHODS, MfaMethod, VerifiedFactor
from storno_security.mfa.storage import MfaChallengeStore, StoredChallenge

__all__ = ["IssuedChallenge", "MfaChallenges", "PendingChallenge", "VerifiedChallenge"]


@attrs.frozen(kw_only=True)
class IssuedChallenge:
    """A new challenge, to send to the client.

    Attributes:
        token: the challenge token (secret; only its SHA-256 is stored).
        user_id: the user who passed the first factor (not for the client).
        methods: the second factors the client may answer with.
        expires_at: when the challenge dies.
    """

    token: str = attrs.field(repr=False)
    user_id: str
    methods: tuple[MfaMethod, ...]
    expires_at: datetime

    def response(self) -> dict[str, Any]:
        """The login response body (MFA-4).

        Returns:
            ``{"mfa_required": True, "mfa_token": token, "mfa_methods": [...]}``.
        """
        return {"mfa_required": True, "mfa_token": self.token, "mfa_methods": list(self.methods)}


@attrs.frozen(kw_only=True)
class PendingChallenge:
    """A live challenge, as shown to the factor check (no secret in it).

    Attributes:
        user_id: whose second factor must be checked.
        methods: the factors allowed.
        expires_at: when the challenge dies.
        failures: wrong answers so far.
    """

    user_id: str
    methods: tuple[MfaMethod, ...]
    expires_at: datetime
    failures: int


@attrs.frozen(kw_only=True)
class VerifiedChallenge:
    """A challenge answered rightly and consumed: start the user's session now.

    Attributes:
        user_id: who logged in.
        method: the second factor that passed.
        verified_at: when.
        factor: the full factor result (e.g. ``backup_codes_left``).
    """

    user_id: str
    method: MfaMethod
    verified_at: datetime
    factor: VerifiedFactor


class MfaChallenges(_PolicyStoreService[MfaChallengeStore]):
    """Issues and completes MFA login challenges.

    Args:
        policy: the MFA policy (lifetime, failures allowed); defaults to ``MfaPolicy()``.
        store: where challenges live.
        clock: the time source.

    Thread-safe.
    """

    def __repr__(self) -> str:
        return f"MfaChallenges(lifetime={self.policy.challenge_lifetime})"

    def issue(self, user_id: str, *, has_passkey: bool = False) -> IssuedChallenge:
        """Issue a challenge after a correct first factor of a user with MFA on.

        Args:
            user_id: the user who passed the first factor.
            has_passkey: the user has a passkey, which may then answer too (MFA-5):
                ``passkey`` joins the methods.

        Raises:
            ValueError: ``user_id`` is empty.
            StoreError: the store failed; no challenge exists.
        """
        if not isinstance(user_id, str) or not user_id:
            raise ValueError("user_id must be a non-empty string")
        if not isinstance(has_passkey, bool):
            raise TypeError("has_passkey must be a bool")
        methods: tuple[MfaMethod, ...] = (
            (*DEFAULT_METHODS, "passkey") if has_passkey else DEFAULT_METHODS
        )
        now = self._clock.now()
        token = new_token()
        expires_at = now + self.policy.challenge_lifetime
        self._store.create_challenge(
            StoredChallenge(
                token_hash=hash_token(token, InvalidMfaChallengeError),
                user_id=user_id,
                methods=methods,
                created_at=now,
                expires_at=expires_at,
                max_failures=self.policy.challenge_max_failures,
            )
        )
        return IssuedChallenge(token=token, user_id=user_id, methods=methods, expires_at=expires_at)

    def complete(
        self, token: str, verify_factor: Callable[[PendingChallenge], VerifiedFactor]
    ) -> VerifiedChallenge:
        """Answer a challenge: check the second factor, then consume the challenge.

        ``verify_factor`` is given the pending challenge (whose user is now known) and checks
        the client's answer: typically ``SecondFactorVerifier.verify`` with the user's stored
        TOTP secret, or the passkeys capability's assertion check. It returns the
        :class:`VerifiedFactor` or raises.

        A wrong answer is counted as one failure of the challenge, atomically; after
        ``policy.challenge_max_failures`` of them the challenge is dead. Wrong answers are:
        :class:`InvalidMfaCodeError` (a wrong, malformed, replayed or used code, an unknown
        method), :class:`~storno_security.errors.InvalidPasskeyError` and its subclasses such
        as :class:`~storno_security.errors.PasskeyCloneSuspectedError` (an assertion the
        passkeys capability refused), a factor of another user, and a method the challenge
        does not allow. Nothing else raised by ``verify_factor`` is counted: a store failure
        (:class:`~storno_security.errors.StoreError`),
        :class:`~storno_security.errors.MfaLockedError` (the code was
        not even evaluated), a caller's ``TypeError``/``ValueError``, or any other error
        propagates as it is and leaves the challenge as it was.

        Returns:
            A :class:`VerifiedChallenge`; the challenge is consumed.

        Raises:
            InvalidMfaChallengeError: the token is malformed, unknown, expired, used, or dead
                after too many failures (including a wrong answer that arrived after the last
                failure allowed).
            InvalidMfaCodeError: the code was wrong (or the factor was another user's, or a
                method not allowed); ``attempts_left`` says how many more failures the
                challenge takes (0: it is dead now).
            InvalidPasskeyError: the passkey assertion was refused (the passkeys capability's
                error, unchanged, e.g. :class:`PasskeyCloneSuspectedError`); it was counted.
            MfaLockedError: the user got too many codes wrong; nothing was counted.
            StoreError: a store failed (the factor check's, or the challenge store's).
        """
        token_hash = hash_token(token, InvalidMfaChallengeError)
        stored = self._store.get_challenge(token_hash, now=self._clock.now())
        if stored is None:
            raise InvalidMfaChallengeError(reason="not_live")
        pending = PendingChallenge(
            user_id=stored.user_id,
            methods=_methods_of(stored.methods),
            expires_at=stored.expires_at,
            failures=stored.failures,
        )
        try:
            factor = verify_factor(pending)
            if not isinstance(factor, VerifiedFactor):
                raise TypeError("verify_factor must return a VerifiedFactor")
            if factor.user_id != stored.user_id:
                raise InvalidMfaCodeError(reason="wrong_user")
            if factor.method not in stored.methods:
                raise InvalidMfaCodeError(reason="method_not_allowed")
        except (InvalidMfaCodeError, InvalidPasskeyError) as exc:
            failures = self._store.record_failure(token_hash, now=self._clock.now())
            if failures is None:
                raise InvalidMfaChallengeError(reason="not_live") from None
            if isinstance(exc, InvalidPasskeyError):
                raise
            left = max(stored.max_failures - failures, 0)
            raise InvalidMfaCodeError(reason=exc.reason, attempts_left=left) from None
        now = self._clock.now()
        consumed = self._store.consume_challenge(token_hash, now=now)
        if consumed is None:
            raise InvalidMfaChallengeError(reason="not_live")
        return VerifiedChallenge(
            user_id=consumed.user_id, method=factor.method, verified_at=now, factor=factor
        )


_KNOWN_METHODS: dict[str, MfaMethod] = {
    "totp": "totp",
    "backup_code": "backup_code",
    "passkey": "passkey",
}


def _methods_of(methods: tuple[str, ...]) -> tuple[MfaMethod, ...]:
    return tuple(_KNOWN_METHODS[m] for m in methods if m in _KNOWN_METHODS)
