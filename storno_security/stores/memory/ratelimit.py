"""Rate-limit counters in memory: one lock, per process (the ``memory://`` storage)."""

from __future__ import annotations

import threading

from storno_security.ratelimit.storage import Acquisition, acquire_bucket, acquire_window
from storno_security.stores.memory._base import _check_str

__all__ = ["MemoryRateLimitStorage"]

#: Expired keys are swept once per this many operations, so memory stays bounded by the keys
#: that are live, at an amortised cost of O(1) per check.
_SWEEP_EVERY = 4096


class MemoryRateLimitStorage:
    """Sliding logs and token buckets in a dict under one lock.

    Each check is atomic among the threads of one process; counts are not shared between
    processes (give each worker its own limiter only if a per-worker limit is what you want; use
    Redis otherwise). Keys whose state has expired (an empty window, a full bucket) are swept
    from time to time, so an attacker cycling through addresses costs memory only while their
    counts are live. Expired state that has not been swept yet gives the same answers as no
    state at all (its entries are out of the window, its bucket has refilled), so lookups need
    not check expiry, just as Redis expiring a key never changes an answer.
    """

    __slots__ = ("_buckets", "_expires", "_lock", "_ops", "_windows")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, list[int]] = {}
        self._buckets: dict[str, tuple[int, int]] = {}
        self._expires: dict[str, int] = {}
        self._ops = 0

    def __repr__(self) -> str:
        return f"MemoryRateLimitStorage(keys={len(self._expires)})"

    def __len__(self) -> int:
        """The number of keys held (live or not yet swept)."""
        return len(self._expires)

    def _sweep(self, now_ms: int) -> None:
        self._ops += 1
        if self._ops < _SWEEP_EVERY:
            return
        self._ops = 0
        for key in [k for k, at in self._expires.items() if at <= now_ms]:
            del self._expires[key]
            self._windows.pop(key, None)
            self._buckets.pop(key, None)

    def acquire_window(self, key: str, *, limit: int, window_ms: int, now_ms: int) -> Acquisition:
        """Sliding log under the lock. See :class:`~storno_security.ratelimit.RateLimitStorage`.

        Raises:
            TypeError: ``key`` is not a str.
        """
        _check_str("key", key)
        with self._lock:
            self._sweep(now_ms)
            entries = self._windows.get(key, [])
            acquisition, stored, ttl_ms = acquire_window(
                entries, limit=limit, window_ms=window_ms, now_ms=now_ms
            )
            if stored is not None:
                self._windows[key] = stored
                self._expires[key] = now_ms + ttl_ms
            return acquisition

    def acquire_bucket(
        self, key: str, *, capacity: int, refill_amount: int, refill_period_ms: int, now_ms: int
    ) -> Acquisition:
        """Token bucket under the lock. See :class:`~storno_security.ratelimit.RateLimitStorage`.

        Raises:
            TypeError: ``key`` is not a str.
        """
        _check_str("key", key)
        with self._lock:
            self._sweep(now_ms)
            state = self._buckets.get(key)
            acquisition, stored, ttl_ms = acquire_bucket(
                state,
                capacity=capacity,
                refill_amount=refill_amount,
                refill_period_ms=refill_period_ms,
                now_ms=now_ms,
            )
            if stored is not None:
                self._buckets[key] = stored
                self._expires[key] = now_ms + ttl_ms
            return acquisition
