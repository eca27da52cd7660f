"""Rate-limit counters in Redis: one Lua script per check, so one round trip and atomic.

Keys (``prefix`` defaults to ``storno:``; the limiter chooses the rest of the key):

* sliding windows: ``{prefix}{key}``, a list of the request times (milliseconds) still in the
  window, at most the limit, rewritten by each check that lets a request through and expiring
  when its newest entry leaves the window;
* token buckets: ``{prefix}{key}``, a hash ``l`` (level, in units of 1/refill_period_ms token)
  and ``t`` (time of that level, ms), expiring when the bucket would be full again (an absent
  key *is* a full bucket).

Time comes from the caller (``now_ms``), not from the Redis server: the limiter reads its
injected clock, which lets tests drive time, and is what ``limits``' own moving window does too
(it sends the client host's wall-clock time). Hosts sharing a Redis therefore need synchronised
clocks (NTP). Time never moves backwards on a key: a host whose clock is behind the newest time
recorded there is served at that time (a log records its request there; a bucket refills
nothing), so each log is exact on its own timeline; a host whose clock is ahead moves that
timeline forward, and the others' requests leave its window early by the skew.

A key's time-to-live is when its state expires on the caller's clock plus a grace of 5 seconds
(``_EXPIRY_GRACE_MS``). Without it a bucket refilling in 2 ms would live 2 ms of real time, and
a caller whose clock lags real time (a loaded host, a clock a little behind) would find it gone
while, on its own clock, the state is still live. Keeping a key longer never changes an answer
for a caller at or after that expiry: every entry of a log is then out of its window, and a
bucket's level is ``min(full, level + elapsed * rate) = full`` with the time moved to ``now``,
which is exactly what an absent key gives. It only changes the answer for a caller behind that
expiry, who is then served on the key's own timeline, as the memory storage does.
"""

from __future__ import annotations

from typing import Any

import redis

from storno_security.ratelimit.storage import Acquisition
from storno_security.stores.redis._base import _bad_reply, _call, _RedisStore

__all__ = ["RedisRateLimitStorage"]

_SAFE = 2**53 - 1  # integers a Lua double holds exactly (and the next one would round)
_FULL = 2**50  # the most units a bucket holds (capacity * refill_period_ms)
_MAX_LOG = 1_000_000  # entries in one sliding log

#: Milliseconds a rate-limit key outlives its state (see the module docstring).
_EXPIRY_GRACE_MS = 5_000

# KEYS[1]: the log. ARGV: now_ms, window_ms, limit. Every entry is checked before anything is
# written, so a log holding something else is refused untouched.
# Returns {allowed (0/1), remaining, retry_after_ms, reset_after_ms}.
_WINDOW_SCRIPT = (
    f"local GRACE = {_EXPIRY_GRACE_MS}\n"
    + """
local SAFE = 2 ^ 53
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local entries = redis.call('LRANGE', KEYS[1], 0, -1)
local newest = nil
for i = 1, #entries do
    local t = int(entries[i])
    if t == nil or math.abs(t) >= SAFE then
        return corrupt('rate-limit entry is not an integer')
    end
    entries[i] = t
    if newest == nil or t > newest then newest = t end
end
-- time never moves backwards on a log: a caller behind its newest entry is served at that time
local at = now
if newest ~= nil and newest > at then at = newest end
local live = {}
local oldest = nil
for i = 1, #entries do
    local t = entries[i]
    if t > at - window then
        live[#live + 1] = string.format('%.0f', t)
        if oldest == nil or t < oldest then oldest = t end
    end
end
if #live >= limit then
    -- the newest entry is in the window whenever any entry is
    return {0, 0, oldest + window - now, newest + window - now}
end
live[#live + 1] = string.format('%.0f', at)
-- a new log's first write is RPUSH, which a full Redis under noeviction refuses (OOM); once a
-- script has written, Redis lets the rest of its writes through, so a DEL first would let a
-- flood of new clients grow Redis past maxmemory. An existing log is rewritten in place.
if #entries > 0 then
    redis.call('DEL', KEYS[1])
end
for i = 1, #live, 4000 do
    redis.call('RPUSH', KEYS[1], unpack(live, i, math.min(i + 3999, #live)))
end
redis.call('PEXPIRE', KEYS[1], at + window - now + GRACE)
return {1, limit - #live, 0, at + window - now}
"""
)

# KEYS[1]: the bucket. ARGV: now_ms, capacity, refill_amount, refill_period_ms.
# Integer arithmetic throughout: the policy keeps capacity * refill_period_ms below 2**50, so
# sums and products of Lua's doubles are exact; a quotient is not always (a / b rounds), so
# divisions go through floor_div / ceil_div, which correct the rounded quotient by exact products.
# The stored level and time are read with int() and bounded: an infinity, or a number too large
# for exact arithmetic, would make floor_div loop forever inside Redis.
# Returns {allowed (0/1), remaining, retry_after_ms, reset_after_ms}.
_BUCKET_SCRIPT = (
    f"local GRACE = {_EXPIRY_GRACE_MS}\n"
    + """
local function floor_div(a, b)
    local q = math.floor(a / b)
    while q * b > a do q = q - 1 end
    while (q + 1) * b <= a do q = q + 1 end
    return q
end
local function ceil_div(a, b)
    return -floor_div(-a, b)
end
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[3])
local unit = tonumber(ARGV[4])
local full = tonumber(ARGV[2]) * unit
local level = full
local last = now
local state = redis.call('HMGET', KEYS[1], 'l', 't')
if state[1] or state[2] or redis.call('EXISTS', KEYS[1]) == 1 then
    level = int(state[1])
    last = int(state[2])
    -- a level outside [0, 2**50] (the policy keeps a full bucket below that) or a time of 2**53
    -- or more would make the divisions inexact, and floor_div could then loop forever
    if level == nil or last == nil or level < 0 or level > 2 ^ 50 or math.abs(last) >= 2 ^ 53 then
        return corrupt('token bucket is malformed')
    end
    if now > last then
        level = math.min(full, level + (now - last) * rate)
        last = now
    end
end
local behind = last - now
if level < unit then
    return {0, 0, ceil_div(unit - level, rate) + behind, ceil_div(full - level, rate) + behind}
end
level = level - unit
local reset = ceil_div(full - level, rate) + behind
redis.call('HSET', KEYS[1], 'l', string.format('%.0f', level), 't', string.format('%.0f', last))
redis.call('PEXPIRE', KEYS[1], reset + GRACE)
return {1, floor_div(level, unit), 0, reset}
"""
)


class RedisRateLimitStorage(_RedisStore):
    """Sliding logs and token buckets in Redis, shared by every process and host that uses it.

    Each check is one ``EVALSHA`` (one round trip; after a Redis restart redis-py reloads the
    script once with ``EVAL``).

    Args:
        client: a synchronous redis-py client (``decode_responses`` either way). Give it short
            socket timeouts: a check waits at most that long before failing.
        prefix: prepended to every key, so several applications can share one database.

    Raises:
        TypeError: ``prefix`` is not a str.
    """

    def __init__(self, client: redis.Redis[Any], *, prefix: str = "storno:") -> None:
        super().__init__(client, prefix=prefix)
        self._window = self._script(_WINDOW_SCRIPT)
        self._bucket = self._script(_BUCKET_SCRIPT)

    @property
    def client(self) -> redis.Redis[Any]:
        """The redis-py client (to close it, or to share its pool)."""
        return self._client

    def acquire_window(self, key: str, *, limit: int, window_ms: int, now_ms: int) -> Acquisition:
        """Sliding log in one script. See :class:`~storno_security.ratelimit.RateLimitStorage`.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: a number is out of range (the script's arithmetic must stay exact).
            StoreUnavailableError: Redis could not be reached or failed the script.
            CorruptRecordError: the key holds something this storage does not write.
        """
        full_key = self._key("", "key", key)
        _check_range("now_ms", now_ms, -_SAFE, _SAFE)
        _check_range("window_ms", window_ms, 1, _SAFE)
        _check_range("limit", limit, 1, _MAX_LOG)
        reply = _call(lambda: self._window(keys=[full_key], args=[now_ms, window_ms, limit]))
        return _acquisition(reply)

    def acquire_bucket(
        self, key: str, *, capacity: int, refill_amount: int, refill_period_ms: int, now_ms: int
    ) -> Acquisition:
        """Token bucket in one script. See :class:`~storno_security.ratelimit.RateLimitStorage`.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: a number is out of range (the script's arithmetic must stay exact:
                ``capacity * refill_period_ms`` at most 2**50).
            StoreUnavailableError: Redis could not be reached or failed the script.
            CorruptRecordError: the key holds something this storage does not write.
        """
        full_key = self._key("", "key", key)
        _check_range("now_ms", now_ms, -_SAFE, _SAFE)
        _check_range("refill_period_ms", refill_period_ms, 1, _FULL)
        _check_range("capacity", capacity, 1, _FULL // refill_period_ms)
        _check_range("refill_amount", refill_amount, 1, _FULL)
        reply = _call(
            lambda: self._bucket(
                keys=[full_key], args=[now_ms, capacity, refill_amount, refill_period_ms]
            )
        )
        return _acquisition(reply)


def _check_range(name: str, value: object, low: int, high: int) -> None:
    # A zero rate or a bucket beyond 2**50 units would make the script's division loop forever
    # inside Redis, blocking every client of the server: refused here, before any round trip.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}")


def _acquisition(reply: object) -> Acquisition:
    if (
        not isinstance(reply, list)
        or len(reply) != 4
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in reply)
    ):
        _bad_reply()
    allowed, remaining, retry_after_ms, reset_after_ms = reply
    return Acquisition(
        allowed=allowed == 1,
        remaining=remaining,
        retry_after_ms=retry_after_ms,
        reset_after_ms=reset_after_ms,
    )
