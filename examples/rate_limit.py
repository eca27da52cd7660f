"""Rate limiting the login endpoint: 5 attempts a minute per client, then 429 with Retry-After.

A frozen clock lets the example move through the minute without sleeping. Memory storage counts
per process; several workers share one Redis instead:
``RateLimiter(storno_security.stores.storage_from_uri("redis://..."), ...)``.

Run: python examples/rate_limit.py
"""

from __future__ import annotations

from datetime import UTC, datetime

from storno_security import FrozenClock, RateLimitExceededError
from storno_security.errors import LimitStatus
from storno_security.ratelimit import LOGIN, RateLimiter, client_key
from storno_security.stores.memory import MemoryRateLimitStorage


def headers(status: LimitStatus) -> dict[str, str]:
    """The response headers a status asks for (IETF RateLimit fields, plus Retry-After)."""
    out = {
        "RateLimit-Limit": str(status.limit),
        "RateLimit-Remaining": str(status.remaining),
        "RateLimit-Reset": str(status.reset),
    }
    if status.retry_after:
        out["Retry-After"] = str(status.retry_after)
    return out


def show(fields: dict[str, str]) -> str:
    return "  ".join(f"{name}: {value}" for name, value in fields.items())


def main() -> None:
    clock = FrozenClock(datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC))
    # Without policies=..., the limiter has the spec's presets: "login" is 5 per sliding minute.
    limiter = RateLimiter(MemoryRateLimitStorage(), clock=clock)
    client = client_key("2001:db8:1234:5678::42")  # an IPv6 client is limited by its /64
    print("limiting by:", client)

    def post_login() -> str:
        try:
            # First thing in the handler, before any bcrypt work (RL-5).
            status = limiter.hit(LOGIN, client)
        except RateLimitExceededError as exc:
            # str(exc) is the response body; exc.status fills the headers.
            return f'429 "{exc}"  {show(headers(exc.status))}'
        return f"200 {show(headers(status))}"  # ...then check the password

    for attempt in range(1, 7):
        print(f"attempt {attempt}:", post_login())
        clock.advance(5)  # one attempt every 5 seconds

    # The first attempt stops counting 60 s after it was made; then one more is let through.
    clock.advance(30)
    print("a little later:", post_login())


if __name__ == "__main__":
    main()
