"""The rate-limit hit, async (RL-1..RL-5): the same policies, keys and answers as
:meth:`RateLimiter.hit <storno_security.ratelimit.RateLimiter.hit>`, over an async storage.

:class:`AsyncRateLimitStorage` has the synchronous protocol's two verbs
(:class:`~storno_security.ratelimit.RateLimitStorage`). The memory storage is used on the loop as
it is (a lock held for microseconds); :class:`~storno_security.aio.redis.AsyncRedisRateLimitStorage`
runs the very scripts of the synchronous Redis storage on ``redis.asyncio``, so sync and async
callers share one count.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from storno_security.aio.offload import Offloader
from storno_security.clock import Clock
from storno_security.errors import (
    CorruptRecordError,
    StoreUnavailableError,
)
from storno_security.ratelimit.limiter import (
    Policy,
    RateLimiter,
    RateLimitStatus,
    _status,
)
from storno_security.ratelimit.storage import Acquisition, RateLimitStorage

__all__ = [
    "AsyncRateLimitStorage",
    "AsyncRateLimiter",
    "InlineRateLimitStorage",
    "OffloadedRateLimitStorage",
]


@runtime_checkable
class AsyncRateLimitStorage(Protocol):
    """:class:`~storno_security.ratelimit.RateLimitStorage`, async: each verb one atomic
    operation across every process sharing the storage."""

    async def acquire_window(
        self, key: str, *, limit: int, window_ms: int, now_ms: int
    ) -> Acquisition:
        """Sliding log (see the synchronous protocol).

        Raises:
            StoreUnavailableError: the backend could not be reached or failed.
            CorruptRecordError: the key holds something this storage does not write.
        """
        ...

    async def acquire_bucket(
        self, key: str, *, capacity: int, refill_amount: int, refill_period_ms: int, now_ms: int
    ) -> Acquisition:
        """Token bucket (see the synchronous protocol).

        Raises:
            StoreUnavailableError: the backend could not be reached or failed.
            CorruptRecordError: the key holds something this storage does not write.
        """
        ...


class InlineRateLimitStorage:
    """A memory storage used on the loop: its lock is held for microseconds, never across
    I/O.

    Args:
        storage: the kit's :class:`~storno_security.stores.memory.MemoryRateLimitStorage`.
    """

    def __init__(self, storage: RateLimitStorage) -> None:
        self._storage = storage

    def __repr__(self) -> str:
        return f"InlineRateLimitStorage({self._storage!r})"

    async def acquire_window(
        self, key: str, *, limit: int, window_ms: int, now_ms: int
    ) -> Acquisition:
        """See :meth:`AsyncRateLimitStorage.acquire_window`."""
        return self._storage.acquire_window(key, limit=limit, window_ms=window_ms, now_ms=now_ms)

    async def acquire_bucket(
        self, key: str, *, capacity: int, refill_amount: int, refill_period_ms: int, now_ms: int
    ) -> Acquisition:
        """See :meth:`AsyncRateLimitStorage.acquire_bucket`."""
        return self._storage.acquire_bucket(
            key,
            capacity=capacity,
            refill_amount=refill_amount,
            refill_period_ms=refill_period_ms,
            now_ms=now_ms,
        )


class OffloadedRateLimitStorage:
    """Any synchronous storage, its checks run in the offloader's ``io`` lane.

    Args:
        storage: the synchronous storage.
        offload: the thread pools.
    """

    def __init__(self, storage: RateLimitStorage, offload: Offloader) -> None:
        self._storage = storage
        self._offload = offload

    def __repr__(self) -> str:
        return f"OffloadedRateLimitStorage({self._storage!r})"

    async def acquire_window(
        self, key: str, *, limit: int, window_ms: int, now_ms: int
    ) -> Acquisition:
        """See :meth:`AsyncRateLimitStorage.acquire_window`."""
        storage = self._storage
        return await self._offload.io(
            lambda: storage.acquire_window(key, limit=limit, window_ms=window_ms, now_ms=now_ms)
        )

    async def acquire_bucket(
        self, key: str, *, capacity: int, refill_amount: int, refill_period_ms: int, now_ms: int
    ) -> Acquisition:
        """See :meth:`AsyncRateLimitStorage.acquire_bucket`."""
        storage = self._storage
        return await self._offload.io(
            lambda: storage.acquire_bucket(
                key,
                capacity=capacity,
                refill_amount=refill_amount,
                refill_period_ms=refill_period_ms,
                now_ms=now_ms,
            )
        )


class AsyncRateLimiter:
    """Named policies over an async storage, checked with :meth:`hit`: the answers of
    :class:`~storno_security.ratelimit.RateLimiter` (same keys, so both share counts).

    Args:
        storage: where counts live.
        clock: the time source.
        policies: the policies by name (``kit.limiter.policies``).

    Raises:
        TypeError, ValueError: as :class:`~storno_security.ratelimit.RateLimiter`.
    """

    __slots__ = ("_checked", "_policies", "_storage")

    def __init__(
        self,
        storage: AsyncRateLimitStorage,
        *,
        clock: Clock,
        policies: Mapping[str, Policy] | None = None,
    ) -> None:
        # The synchronous limiter checks the clock and the policies once, for both.
        checked = RateLimiter(
            _NoStorage(), clock=clock, policies=None if policies is None else policies.values()
        )
        self._storage = storage
        self._checked = checked
        self._policies = checked.policies

    def __repr__(self) -> str:
        return f"AsyncRateLimiter({self._storage!r}, policies={sorted(self._policies)})"

    @property
    def policies(self) -> Mapping[str, Policy]:
        """The policies by name (read-only)."""
        return self._policies

    async def hit(self, policy: str, identifier: str) -> RateLimitStatus:
        """Count one request of ``identifier`` against ``policy``, or refuse it (see
        :meth:`RateLimiter.hit <storno_security.ratelimit.RateLimiter.hit>`).

        Raises:
            KeyError: no policy has this name.
            TypeError: ``identifier`` is not a str.
            ValueError: ``identifier`` is empty or longer than 256 characters.
            RateLimitExceededError: over the limit; ``status`` says when to retry (RL-3).
            RateLimitUnavailableError: the storage failed and the policy fails closed (RL-4).
        """
        ask = self._checked.ask(policy, identifier)
        try:
            if ask.window:
                acquisition = await self._storage.acquire_window(ask.key, **ask.arguments)
            else:
                acquisition = await self._storage.acquire_bucket(ask.key, **ask.arguments)
        except (StoreUnavailableError, CorruptRecordError) as exc:
            return ask.unavailable(exc)
        return _status(ask.policy.name, ask.limit, acquisition)


class _NoStorage:
    """Stands for a storage where only the limiter's argument checks are wanted."""

    def acquire_window(self, key: str, *, limit: int, window_ms: int, now_ms: int) -> Acquisition:
        raise NotImplementedError  # pragma: no cover - never called

    def acquire_bucket(
        self, key: str, *, capacity: int, refill_amount: int, refill_period_ms: int, now_ms: int
    ) -> Acquisition:
        raise NotImplementedError  # pragma: no cover - never called
