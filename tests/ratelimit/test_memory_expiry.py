"""Issue 18: the memory storage forgets expired keys a few per check, never in one sweep.

The storage used to sweep every key once per 4,096 checks, under its only lock: at a million
client keys one check in 4,096 stalled for about 82 ms. Now each check looks at no more than a
fixed number of due keys (in the order they expire), its tables are sharded so that none is
ever rebuilt whole, and they hold no object the garbage collector tracks. Forgetting expired
state never changes an answer (checked against a model that forgets nothing), and memory stays
bounded by the keys that are live.
"""

from __future__ import annotations

import gc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storno_security.ratelimit import Acquisition
from storno_security.ratelimit.storage import acquire_bucket, acquire_window
from storno_security.stores.memory import MemoryRateLimitStorage
from storno_security.stores.memory import ratelimit as memory_ratelimit

START_MS = 1_772_366_400_000  # 2026-03-01T12:00:00Z
BUDGET = memory_ratelimit._SWEEP_BUDGET


def _fill(storage: MemoryRateLimitStorage, count: int, *, at: int, window_ms: int) -> None:
    for n in range(count):
        storage.acquire_window(f"k{n}", limit=5, window_ms=window_ms, now_ms=at)


def test_each_check_forgets_at_most_a_few_expired_keys() -> None:
    storage = MemoryRateLimitStorage()
    _fill(storage, 1_000, at=START_MS, window_ms=1_000)
    assert len(storage) == 1_000
    later = START_MS + 60_000  # every one of them has expired
    storage.acquire_window("new", limit=5, window_ms=1_000, now_ms=later)
    assert len(storage) == 1_000 - BUDGET + 1  # no full sweep, however many are due
    for _ in range(1_000 // BUDGET + 1):
        storage.acquire_window("new", limit=10**4, window_ms=1_000, now_ms=later)
    assert len(storage) == 1


def test_keys_are_forgotten_in_the_order_they_expire() -> None:
    storage = MemoryRateLimitStorage()
    for n in range(100):  # kn expires (n + 1) seconds from now
        storage.acquire_window(f"k{n}", limit=5, window_ms=(n + 1) * 1_000, now_ms=START_MS)
    # at START_MS + 50.5 s, keys k0..k49 have expired, k50..k99 have not
    now = START_MS + 50_500
    for _ in range(20):
        storage.acquire_window("probe", limit=10**4, window_ms=1, now_ms=now)
    assert len(storage) == 50 + 1  # k50..k99 and the probe
    assert all(f"k{n}" in storage._windows[hash(f"k{n}") % 1024] for n in range(50, 100))


def test_a_renewed_key_is_kept_until_its_new_expiry() -> None:
    storage = MemoryRateLimitStorage()
    storage.acquire_window("hot", limit=5, window_ms=1_000, now_ms=START_MS)
    storage.acquire_window("hot", limit=5, window_ms=1_000, now_ms=START_MS + 900)
    # queued under its first expiry; found renewed there, it is queued again, not dropped
    for _ in range(5):
        storage.acquire_window("probe", limit=10**4, window_ms=1, now_ms=START_MS + 1_500)
    assert len(storage) == 2
    answer = storage.acquire_window("hot", limit=5, window_ms=1_000, now_ms=START_MS + 1_600)
    assert answer.remaining == 5 - 2  # the entry at +900 is still in the window: exact
    for _ in range(5):
        storage.acquire_window("probe", limit=10**4, window_ms=1, now_ms=START_MS + 10_000)
    assert len(storage) == 1  # only the probe


def test_a_key_holding_a_log_and_a_bucket_counts_once_and_expires_each_in_turn() -> None:
    storage = MemoryRateLimitStorage()
    storage.acquire_window("both", limit=5, window_ms=1_000, now_ms=START_MS)
    storage.acquire_bucket(
        "both", capacity=2, refill_amount=1, refill_period_ms=10_000, now_ms=START_MS
    )
    assert len(storage) == 1
    storage.acquire_window("probe", limit=10**4, window_ms=1, now_ms=START_MS + 2_000)
    assert len(storage) == 2  # the log is gone, the bucket (full again at +10 s) is not
    storage.acquire_window("probe", limit=10**4, window_ms=1, now_ms=START_MS + 20_000)
    assert len(storage) == 1


def test_the_tables_are_invisible_to_the_garbage_collector() -> None:
    """A table holding tuples is tracked, and a full collection walks every entry."""
    storage = MemoryRateLimitStorage()
    _fill(storage, 3_000, at=START_MS, window_ms=60_000)
    for n in range(3_000):
        storage.acquire_bucket(
            f"b{n}", capacity=10, refill_amount=1, refill_period_ms=1_000, now_ms=START_MS
        )
    gc.collect()
    for table in (*storage._windows, *storage._buckets):
        assert not gc.is_tracked(table)


@pytest.mark.parametrize("now_ms", [2**53, -(2**53), 10**30])
def test_times_beyond_what_redis_holds_exactly_are_refused(now_ms: int) -> None:
    storage = MemoryRateLimitStorage()
    with pytest.raises(ValueError, match="now_ms"):
        storage.acquire_window("k", limit=5, window_ms=1_000, now_ms=now_ms)
    with pytest.raises(ValueError, match="now_ms"):
        storage.acquire_bucket(
            "k", capacity=5, refill_amount=1, refill_period_ms=1_000, now_ms=now_ms
        )
    with pytest.raises(TypeError):
        storage.acquire_window("k", limit=5, window_ms=1_000, now_ms=1.5)  # type: ignore[arg-type]


class _NeverForgets:
    """The same arithmetic over plain dicts that keep every key forever."""

    def __init__(self) -> None:
        self.windows: dict[str, tuple[int, ...]] = {}
        self.buckets: dict[str, tuple[int, int]] = {}

    def acquire_window(self, key: str, *, limit: int, window_ms: int, now_ms: int) -> Acquisition:
        answer, stored, _ = acquire_window(
            self.windows.get(key, ()), limit=limit, window_ms=window_ms, now_ms=now_ms
        )
        if stored is not None:
            self.windows[key] = stored
        return answer

    def acquire_bucket(
        self, key: str, *, capacity: int, refill_amount: int, refill_period_ms: int, now_ms: int
    ) -> Acquisition:
        answer, stored, _ = acquire_bucket(
            self.buckets.get(key),
            capacity=capacity,
            refill_amount=refill_amount,
            refill_period_ms=refill_period_ms,
            now_ms=now_ms,
        )
        if stored is not None:
            self.buckets[key] = stored
        return answer


_operations = st.lists(
    st.tuples(
        st.sampled_from(["window", "bucket"]),
        st.integers(0, 6),  # key
        st.one_of(st.integers(0, 50), st.integers(0, 3_000), st.integers(0, 10**7)),  # step
    ),
    min_size=1,
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(
    operations=_operations,
    limit=st.integers(1, 4),
    window_ms=st.sampled_from([1, 500, 1_000, 2_500, 60_000]),
    capacity=st.integers(1, 4),
    refill_period_ms=st.sampled_from([1, 700, 1_000, 30_000]),
)
def test_forgetting_expired_state_never_changes_an_answer(
    operations: list[tuple[str, int, int]],
    limit: int,
    window_ms: int,
    capacity: int,
    refill_period_ms: int,
) -> None:
    storage, model = MemoryRateLimitStorage(), _NeverForgets()
    now = START_MS
    for kind, key_index, step in operations:
        now += step
        key = f"key-{key_index}"
        if kind == "window":
            results = [
                s.acquire_window(key, limit=limit, window_ms=window_ms, now_ms=now)
                for s in (storage, model)
            ]
        else:
            results = [
                s.acquire_bucket(
                    key,
                    capacity=capacity,
                    refill_amount=1,
                    refill_period_ms=refill_period_ms,
                    now_ms=now,
                )
                for s in (storage, model)
            ]
        assert results[0] == results[1], (now, key, results)
        assert len(storage) <= len(set(model.windows) | set(model.buckets))


def test_a_key_whose_log_and_bucket_both_live_is_queued_again_at_the_earlier_end() -> None:
    storage = MemoryRateLimitStorage()
    storage.acquire_window("both", limit=5, window_ms=1_000, now_ms=START_MS)  # queued at +1 s
    storage.acquire_bucket(
        "both", capacity=2, refill_amount=1, refill_period_ms=10_000, now_ms=START_MS
    )  # ends at +10 s
    storage.acquire_window("both", limit=5, window_ms=1_000, now_ms=START_MS + 900)  # to +1.9 s
    storage.acquire_window("probe", limit=10**4, window_ms=1, now_ms=START_MS + 1_500)
    assert len(storage) == 2  # both records of "both" live: kept, queued again at +2 s
    assert 2 + START_MS // 1000 in storage._due
    storage.acquire_window("probe", limit=10**4, window_ms=1, now_ms=START_MS + 2_500)
    assert len(storage) == 2  # the log is gone, the bucket lives on
    answer = storage.acquire_window("both", limit=5, window_ms=1_000, now_ms=START_MS + 2_600)
    assert answer.remaining == 4  # a new log
