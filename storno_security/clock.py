"""Time, injected.

Nothing in storno-security reads the wall clock except :class:`SystemClock`. Every component takes
a ``clock`` so that tests can freeze and advance time instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = [
    "Clock",
    "FrozenClock",
    "SystemClock",
    "ensure_aware_utc",
    "epoch_ms_reader",
    "timestamp_reader",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


@runtime_checkable
class Clock(Protocol):
    """A source of the current time."""

    def now(self) -> datetime:
        """Return the current time as an aware ``datetime`` in UTC."""
        ...


class SystemClock:
    """The real clock: ``datetime.now(UTC)``."""

    __slots__ = ()

    def now(self) -> datetime:
        """Return the current wall-clock time in UTC."""
        return datetime.now(UTC)

    def timestamp(self) -> float:
        """The current wall-clock time as POSIX seconds: what ``now().timestamp()`` gives,
        without building a ``datetime`` (the per-request paths read this; about a tenth of the
        cost)."""
        return time.time()

    def epoch_ms(self) -> int:
        """The current wall-clock time in whole milliseconds since the epoch (rounded down):
        what ``(now() - epoch) // 1 ms`` gives, without building a ``datetime``."""
        return time.time_ns() // 1_000_000

    def __repr__(self) -> str:
        return "SystemClock()"


def timestamp_reader(clock: Clock) -> Callable[[], float]:
    """What reads ``clock`` as POSIX seconds on a hot path: :meth:`SystemClock.timestamp` for
    the real clock itself (no ``datetime`` built), else ``clock.now().timestamp()``, so that any
    other clock, a subclass of :class:`SystemClock` included, is read through its ``now()``."""
    if type(clock) is SystemClock:
        return clock.timestamp
    return lambda: clock.now().timestamp()


def epoch_ms_reader(clock: Clock) -> Callable[[], int]:
    """What reads ``clock`` as whole milliseconds since the epoch (rounded down), as
    :func:`timestamp_reader` reads seconds: :meth:`SystemClock.epoch_ms` for the real clock
    itself, else through ``now()`` (which must be aware: a naive one raises ``ValueError``)."""
    if type(clock) is SystemClock:
        return clock.epoch_ms
    return lambda: (ensure_aware_utc(clock.now()) - _EPOCH) // _ONE_MS


def ensure_aware_utc(value: datetime) -> datetime:
    """Return ``value`` converted to UTC.

    Raises:
        TypeError: ``value`` is not a ``datetime``.
        ValueError: ``value`` is naive (has no time zone).
    """
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetimes are refused: give a time zone (UTC)")
    return value.astimezone(UTC)


class FrozenClock:
    """A clock that only moves when told to. Thread-safe.

    Args:
        at: the starting time (aware). Defaults to 2026-01-01T00:00:00Z.
    """

    __slots__ = ("_lock", "_now")

    def __init__(self, at: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._now = ensure_aware_utc(at) if at is not None else datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        """Return the frozen time."""
        return self._now

    def advance(self, delta: timedelta | float) -> datetime:
        """Move the clock forward (or back, with a negative delta) and return the new time.

        Args:
            delta: a ``timedelta`` or a number of seconds.
        """
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        with self._lock:
            self._now = self._now + step
            return self._now

    def set(self, at: datetime) -> None:
        """Jump to ``at`` (aware)."""
        value = ensure_aware_utc(at)
        with self._lock:
            self._now = value

    def __repr__(self) -> str:
        return f"FrozenClock({self._now.isoformat()})"
