"""What a rate-limit storage must do: two verbs, each one atomic operation (one round trip).

Time is an argument: the limiter reads its injected clock and passes ``now_ms`` (milliseconds
since the epoch), so a storage never reads a clock and tests drive time without sleeping. All
figures are integers of milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import attrs

__all__ = ["Acquisition", "RateLimitStorage", "acquire_bucket", "acquire_window"]


@attrs.frozen(kw_only=True)
class Acquisition:
    """The outcome of one atomic check-and-count.

    Attributes:
        allowed: the request was counted and may proceed.
        remaining: requests still allowed right now after this one (0 when refused).
        retry_after_ms: when refused, how long until one request would be allowed; else 0.
        reset_after_ms: how long until the client's full allowance is back.
    """

    allowed: bool
    remaining: int
    retry_after_ms: int
    reset_after_ms: int


class RateLimitStorage(Protocol):
    """Counters for rate limits. Implementations: memory (a lock) and Redis (Lua scripts).

    Every method is one atomic operation across all the processes that share the storage:
    two concurrent checks can never both take the last unit of an allowance.
    """

    def acquire_window(self, key: str, *, limit: int, window_ms: int, now_ms: int) -> Acquisition:
        """Sliding log: let the request through and record ``now_ms`` if fewer than ``limit``
        recorded requests are newer than ``now_ms - window_ms``.

        Raises:
            StoreUnavailableError: the backend could not be reached or failed.
            CorruptRecordError: the key holds something this storage does not write.
        """
        ...

    def acquire_bucket(
        self, key: str, *, capacity: int, refill_amount: int, refill_period_ms: int, now_ms: int
    ) -> Acquisition:
        """Token bucket: refill by elapsed time, then take one token if there is one.

        Raises:
            StoreUnavailableError: the backend could not be reached or failed.
            CorruptRecordError: the key holds something this storage does not write.
        """
        ...


def acquire_window(
    entries: Sequence[int], *, limit: int, window_ms: int, now_ms: int
) -> tuple[Acquisition, tuple[int, ...] | None, int]:
    """The sliding-log step, as pure arithmetic (the memory store runs it under a lock; the
    Redis Lua script is the same steps).

    Time only moves forward on a log: a caller whose clock is behind the newest recorded entry
    (another host's) is served at that entry's time, and its request is recorded there, so the
    entries that leave the window are gone for good and the log is exact on its own timeline.
    Only the entries still in the window are kept, so the log never holds more than ``limit``.

    Args:
        entries: the recorded request times.

    Returns:
        The acquisition, the entries to store (``None`` when unchanged), and the time-to-live of
        the stored entries in milliseconds.
    """
    at = max([now_ms, *entries])
    live = [t for t in entries if t > at - window_ms]
    if len(live) >= limit:
        acquisition = Acquisition(
            allowed=False,
            remaining=0,
            retry_after_ms=min(live) + window_ms - now_ms,
            reset_after_ms=max(live) + window_ms - now_ms,
        )
        return acquisition, None, 0
    reset_after_ms = at + window_ms - now_ms
    acquisition = Acquisition(
        allowed=True,
        remaining=limit - len(live) - 1,
        retry_after_ms=0,
        reset_after_ms=reset_after_ms,
    )
    return acquisition, (*live, at), reset_after_ms


def acquire_bucket(
    state: tuple[int, int] | None,
    *,
    capacity: int,
    refill_amount: int,
    refill_period_ms: int,
    now_ms: int,
) -> tuple[Acquisition, tuple[int, int] | None, int]:
    """The token-bucket step, as exact integer arithmetic.

    The level is counted in units of ``1 / refill_period_ms`` token, so one millisecond adds
    exactly ``refill_amount`` units and one request takes ``refill_period_ms`` units.

    Args:
        state: ``(level_units, last_ms)`` as stored, or ``None`` for a full bucket.

    Returns:
        The acquisition, the state to store (``None`` when unchanged), and its time-to-live in
        milliseconds (after which an absent key means a full bucket, which is the truth).
    """
    full = capacity * refill_period_ms
    unit = refill_period_ms
    if state is None:
        level, last = full, now_ms
    else:
        level, last = state
        if now_ms > last:
            level = min(full, level + (now_ms - last) * refill_amount)
            last = now_ms
        # a clock behind the stored time refills nothing and keeps the later time
    behind = last - now_ms  # > 0 only when this caller's clock is behind the stored time
    if level < unit:
        return (
            Acquisition(
                allowed=False,
                remaining=0,
                retry_after_ms=-(-(unit - level) // refill_amount) + behind,
                reset_after_ms=-(-(full - level) // refill_amount) + behind,
            ),
            None,
            0,
        )
    level -= unit
    reset_after_ms = -(-(full - level) // refill_amount) + behind
    acquisition = Acquisition(
        allowed=True,
        remaining=level // unit,
        retry_after_ms=0,
        reset_after_ms=reset_after_ms,
    )
    return acquisition, (level, last), reset_after_ms
