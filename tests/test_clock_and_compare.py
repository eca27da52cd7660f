"""The clock and the constant-time comparison helper."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storno_security import constant_time_equal
from storno_security.clock import (
    Clock,
    FrozenClock,
    SystemClock,
    ensure_aware_utc,
    epoch_ms_reader,
    timestamp_reader,
)


def test_system_clock_is_aware_utc() -> None:
    now = SystemClock().now()
    assert now.tzinfo is not None
    assert now.utcoffset() == timedelta(0)
    assert isinstance(SystemClock(), Clock)
    assert repr(SystemClock()) == "SystemClock()"


def test_system_clock_reads_the_same_instant_without_a_datetime() -> None:
    clock = SystemClock()
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for _ in range(100):
        before = clock.now()
        seconds = clock.timestamp()
        milliseconds = clock.epoch_ms()
        after = clock.now()
        assert isinstance(seconds, float)
        assert isinstance(milliseconds, int)
        # now() keeps whole microseconds (the float may lie up to one past `after`), and a
        # float of today's seconds is exact to about a quarter of a microsecond
        assert before.timestamp() - 1e-6 <= seconds <= after.timestamp() + 2e-6
        assert (before - epoch) // timedelta(milliseconds=1) <= milliseconds
        assert milliseconds <= (after - epoch) // timedelta(milliseconds=1)


def test_the_readers_take_the_fast_path_of_the_real_clock_only() -> None:
    class Ahead(SystemClock):
        """A subclass that moves its now(): it must be read through it."""

        __slots__ = ()

        def now(self) -> datetime:
            return super().now() + timedelta(hours=2)

    real = SystemClock()
    assert getattr(timestamp_reader(real), "__func__", None) is SystemClock.timestamp
    assert getattr(epoch_ms_reader(real), "__func__", None) is SystemClock.epoch_ms
    ahead = Ahead()
    assert timestamp_reader(ahead)() - real.timestamp() > 7190
    assert epoch_ms_reader(ahead)() - real.epoch_ms() > 7_190_000
    frozen = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    assert timestamp_reader(frozen)() == frozen.now().timestamp() == 1_767_225_600.0
    assert epoch_ms_reader(frozen)() == 1_767_225_600_000
    frozen.advance(timedelta(milliseconds=1.999))  # whole milliseconds, rounded down
    assert epoch_ms_reader(frozen)() == 1_767_225_600_001
    frozen.set(datetime(1969, 12, 31, 23, 59, 59, 999_500, tzinfo=UTC))
    assert epoch_ms_reader(frozen)() == -1


def test_frozen_clock_moves_only_when_told() -> None:
    clock = FrozenClock(datetime(2026, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1))))
    assert clock.now() == datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    assert clock.now().utcoffset() == timedelta(0)
    assert clock.now() == clock.now()
    assert clock.advance(30) == datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)
    assert clock.advance(timedelta(minutes=-1)) == datetime(2025, 12, 31, 23, 59, 30, tzinfo=UTC)
    clock.set(datetime(2030, 5, 5, tzinfo=UTC))
    assert clock.now() == datetime(2030, 5, 5, tzinfo=UTC)
    assert repr(clock) == "FrozenClock(2030-05-05T00:00:00+00:00)"
    assert isinstance(clock, Clock)


def test_naive_datetimes_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        FrozenClock(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="naive"):
        FrozenClock().set(datetime(2026, 1, 1))
    with pytest.raises(TypeError):
        ensure_aware_utc("2026-01-01")  # type: ignore[arg-type]


@given(a=st.binary(max_size=64), b=st.binary(max_size=64))
def test_compare_bytes(a: bytes, b: bytes) -> None:
    assert constant_time_equal(a, b) is (a == b)


@given(a=st.text(max_size=32), b=st.text(max_size=32))
def test_compare_any_text(a: str, b: str) -> None:
    # hmac.compare_digest alone refuses non-ASCII str; the helper compares UTF-8 bytes.
    assert constant_time_equal(a, b) is (a == b)
    assert constant_time_equal(a, b.encode()) is (a == b)


def test_compare_refuses_other_types() -> None:
    with pytest.raises(TypeError):
        constant_time_equal(1, b"1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        constant_time_equal(b"1", None)  # type: ignore[arg-type]
