"""Rate-limit counters in memory: one lock, per process (the ``memory://`` storage).

Expired keys are removed a few at a time, never in one sweep: every key is queued once, under
the second its state expires, in a queue ordered by time (a heap of seconds, each with the
keys due then), and every check looks at no more than :data:`_SWEEP_BUDGET` due keys before
doing its own work. A key found still live (its state was renewed since it was queued) is
queued again under its new expiry, so the queue never holds a key twice. A check therefore
costs O(log s) for s distinct due seconds, whatever the number of keys, and no check ever
pays for the others: the full sweep this replaces stalled one check in 4,096 for a time
proportional to every key held (82 ms at a million client keys).

Keys are spread by hash over a fixed number of shards, so no table is ever large: a Python
dict that keys come and go from is rebuilt now and then, in time proportional to its size
(one dict of a million keys stalled a check for tens of milliseconds). Each key's state is one
``bytes`` of packed 64-bit integers (its expiry first), which the cyclic garbage collector does
not track: tables of tuples would be tracked, and every full collection would walk a million
live keys (about 100 ms).
"""

from __future__ import annotations

import heapq
import struct
import threading
from typing import Final

from storno_security.ratelimit.storage import Acquisition, acquire_bucket, acquire_window
from storno_security.stores.memory._base import _check_str

__all__ = ["MemoryRateLimitStorage"]

#: The most due keys a check looks at. More than one, so that expiry outpaces the arrival of
#: new keys (a check adds at most one) and memory stays bounded by the keys that are live.
_SWEEP_BUDGET: Final = 16

#: Shards of the key table: about 1,000 keys each at a million keys.
_SHARDS: Final = 1024

#: The times a record holds exactly: what the Redis storage takes too.
_SAFE: Final = 2**53 - 1

# A record: a sliding log is (expires_ms, *entries); a token bucket (expires_ms, level, last).
_EXPIRES: Final = struct.Struct("<q")
_BUCKET: Final = struct.Struct("<qqq")


def _window_record(expires_ms: int, entries: tuple[int, ...]) -> bytes:
    return struct.pack(f"<{len(entries) + 1}q", expires_ms, *entries)


def _window_entries(record: bytes) -> tuple[int, ...]:
    return struct.unpack(f"<{len(record) >> 3}q", record)[1:]


def _check_now(now_ms: object) -> None:
    if isinstance(now_ms, bool) or not isinstance(now_ms, int):
        raise TypeError("now_ms must be an int")
    if not -_SAFE <= now_ms <= _SAFE:
        raise ValueError(f"now_ms must be between {-_SAFE} and {_SAFE}")


class MemoryRateLimitStorage:
    """Sliding logs and token buckets in dicts under one lock.

    Each check is atomic among the threads of one process; counts are not shared between
    processes (give each worker its own limiter only if a per-worker limit is what you want; use
    Redis otherwise). Keys whose state has expired (an empty window, a full bucket) are removed
    a few per check, in the order they expire, so an attacker cycling through addresses costs
    memory only while their counts are live and no check ever waits for a sweep of them all.
    Expired state that has not been removed yet gives the same answers as no state at all (its
    entries are out of the window, its bucket has refilled), so lookups need not check expiry,
    just as Redis expiring a key never changes an answer.
    """

    __slots__ = ("_buckets", "_due", "_due_seconds", "_lock", "_size", "_windows")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # key -> record, in the shard hash(key) picks; a key held in either is queued in _due
        # exactly once
        self._windows: tuple[dict[str, bytes], ...] = tuple({} for _ in range(_SHARDS))
        self._buckets: tuple[dict[str, bytes], ...] = tuple({} for _ in range(_SHARDS))
        self._size = 0
        # second -> the keys queued to be looked at then; _due_seconds is a heap of its seconds
        self._due: dict[int, list[str]] = {}
        self._due_seconds: list[int] = []

    def __repr__(self) -> str:
        return f"MemoryRateLimitStorage(keys={self._size})"

    def __len__(self) -> int:
        """The number of keys held (live or not removed yet)."""
        return self._size

    def _queue(self, key: str, expires_ms: int) -> None:
        second = -(-expires_ms // 1000)
        keys = self._due.get(second)
        if keys is None:
            self._due[second] = [key]
            heapq.heappush(self._due_seconds, second)
        else:
            keys.append(key)

    def _expire(self, now_ms: int) -> None:
        """Look at up to :data:`_SWEEP_BUDGET` keys queued at or before ``now_ms``."""
        seconds = self._due_seconds
        budget = _SWEEP_BUDGET
        while budget and seconds and seconds[0] * 1000 <= now_ms:
            second = seconds[0]
            keys = self._due[second]
            while budget and keys:
                key = keys.pop()
                budget -= 1
                shard = hash(key) % _SHARDS
                live: int | None = None  # the earliest expiry of what stays
                for table in (self._windows[shard], self._buckets[shard]):
                    record = table.get(key)
                    if record is None:
                        continue
                    expires = _EXPIRES.unpack_from(record)[0]
                    if expires <= now_ms:
                        del table[key]
                    elif live is None or expires < live:
                        live = expires
                if live is not None:  # renewed since it was queued: queue it again, later
                    self._queue(key, live)
                else:
                    self._size -= 1
            if not keys:
                del self._due[second]
                heapq.heappop(seconds)

    def acquire_window(self, key: str, *, limit: int, window_ms: int, now_ms: int) -> Acquisition:
        """Sliding log under the lock. See :class:`~storno_security.ratelimit.RateLimitStorage`.

        Raises:
            TypeError: ``key`` or ``now_ms`` has the wrong type.
            ValueError: ``now_ms`` is beyond 2**53 milliseconds either side of the epoch.
        """
        _check_str("key", key)
        _check_now(now_ms)
        shard = hash(key) % _SHARDS
        table = self._windows[shard]
        with self._lock:
            self._expire(now_ms)
            record = table.get(key)
            acquisition, stored, ttl_ms = acquire_window(
                () if record is None else _window_entries(record),
                limit=limit,
                window_ms=window_ms,
                now_ms=now_ms,
            )
            if stored is not None:
                expires = now_ms + ttl_ms
                if record is None and key not in self._buckets[shard]:
                    self._queue(key, expires)
                    self._size += 1
                # A key queued under an earlier second is queued again when that comes; one
                # queued under a later second lives until then, which changes no answer.
                table[key] = _window_record(expires, stored)
            return acquisition

    def acquire_bucket(
        self, key: str, *, capacity: int, refill_amount: int, refill_period_ms: int, now_ms: int
    ) -> Acquisition:
        """Token bucket under the lock. See :class:`~storno_security.ratelimit.RateLimitStorage`.

        Raises:
            TypeError: ``key`` or ``now_ms`` has the wrong type.
            ValueError: ``now_ms`` is beyond 2**53 milliseconds either side of the epoch.
        """
        _check_str("key", key)
        _check_now(now_ms)
        shard = hash(key) % _SHARDS
        table = self._buckets[shard]
        with self._lock:
            self._expire(now_ms)
            record = table.get(key)
            state = None
            if record is not None:
                _, level, last = _BUCKET.unpack(record)
                state = (level, last)
            acquisition, stored, ttl_ms = acquire_bucket(
                state,
                capacity=capacity,
                refill_amount=refill_amount,
                refill_period_ms=refill_period_ms,
                now_ms=now_ms,
            )
            if stored is not None:
                expires = now_ms + ttl_ms
                if record is None and key not in self._windows[shard]:
                    self._queue(key, expires)
                    self._size += 1
                table[key] = _BUCKET.pack(expires, *stored)
            return acquisition
