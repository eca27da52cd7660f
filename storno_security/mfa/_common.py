"""What the MFA services share: the check of their ``policy`` argument and the constructor of
the services that hold an :class:`~storno_security.mfa.policy.MfaPolicy`, a store and a clock.
Private to the capability."""

from __future__ import annotations

from typing import Generic, TypeVar

from storno_security.clock import Clock
from storno_security.mfa.policy import MfaPolicy

_StoreT = TypeVar("_StoreT")


def mfa_policy(policy: object) -> MfaPolicy:
    """``policy``, or ``MfaPolicy()`` for ``None``.

    Raises:
        TypeError: ``policy`` is neither ``None`` nor an :class:`MfaPolicy`.
    """
    if policy is None:
        return MfaPolicy()
    if not isinstance(policy, MfaPolicy):
        raise TypeError("policy must be an MfaPolicy")
    return policy


class _PolicyStoreService(Generic[_StoreT]):
    """A service built from an MFA policy (``None``: the defaults), its store and a clock.

    Raises:
        TypeError: ``policy`` is not an :class:`MfaPolicy`.
    """

    policy: MfaPolicy

    def __init__(self, policy: MfaPolicy | None = None, *, store: _StoreT, clock: Clock) -> None:
        self.policy = mfa_policy(policy)
        self._store = store
        self._clock = clock
