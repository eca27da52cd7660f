"""The per-user limit on wrong second-factor codes (NIST SP 800-63B section 5.2.2).

An MFA login challenge dies after 5 wrong answers, but someone who knows the password can get a
new challenge on every login. So the codes a *user* gets wrong are counted too, whatever
challenge, client address or entry point they come through: at most
``MfaPolicy.max_failures_per_user`` (default 10) in one ``failure_window`` (default 1 hour,
counted from the first failure). After that every code of that user, even a right one, is
refused with :class:`~storno_security.errors.MfaLockedError` until the window ends.

Each attempt is counted *before* its code is evaluated, by one atomic store operation (so the
count cannot be outrun by parallel requests: of any number of concurrent attempts, exactly the
first ``max_failures_per_user`` of a window are evaluated), and a right code clears the count.
:class:`~storno_security.mfa.TotpAuthenticator` and :class:`~storno_security.mfa.BackupCodes`
take an ``MfaLockout`` and do this around every code they check; give both the same one.
"""

from __future__ import annotations

import math

from storno_security.errors import MfaLockedError
from storno_security.mfa._common import _PolicyStoreService
from storno_security.mfa.storage import MfaFailureStore

__all__ = ["MfaLockout"]


class MfaLockout(_PolicyStoreService[MfaFailureStore]):
    """Counts a user's second-factor attempts and refuses them beyond the policy's limit.

    Args:
        policy: the MFA policy (``max_failures_per_user``, ``failure_window``); defaults to
            ``MfaPolicy()``.
        store: where the counts live; shared by every process that checks codes.
        clock: the time source.

    Raises:
        TypeError: ``policy`` is not an :class:`MfaPolicy`.

    Thread-safe.
    """

    def __repr__(self) -> str:
        return (
            f"MfaLockout(max_failures_per_user={self.policy.max_failures_per_user}, "
            f"failure_window={self.policy.failure_window})"
        )

    def count_attempt(self, user_id: str) -> int:
        """Count one attempt of ``user_id``, before its code is evaluated.

        Returns:
            How many more codes may be wrong in this window after this one (0: this is the
            last one that will be evaluated).

        Raises:
            ValueError: ``user_id`` is empty.
            MfaLockedError: the limit was reached: do not evaluate the code; ``retry_after``
                says when the window ends.
            StoreError: the store failed: do not evaluate the code.
        """
        _check_user(user_id)
        now = self._clock.now()
        counted = self._store.record_attempt(
            user_id, now=now, window_ends_at=now + self.policy.failure_window
        )
        limit = self.policy.max_failures_per_user
        if counted.failures > limit:
            wait = (counted.window_ends_at - now).total_seconds()
            raise MfaLockedError(retry_after=max(math.ceil(wait), 1))
        return limit - counted.failures

    def clear(self, user_id: str) -> None:
        """Forget the user's count: a right code was accepted.

        Raises:
            ValueError: ``user_id`` is empty.
            StoreError: the store failed; the count stays.
        """
        _check_user(user_id)
        self._store.clear_failures(user_id)


def _check_user(user_id: object) -> None:
    if not isinstance(user_id, str) or not user_id:
        raise ValueError("user_id must be a non-empty string")
