"""Rate limiting: named policies per client IP over memory or Redis storage (RL-1..RL-5).

Sliding windows (an exact sliding log) for authentication endpoints and token buckets for the
rest, with the spec's numbers as presets; storage by URI through ``limits``' storage classes;
one atomic operation (one Redis round trip) per check; time from an injected clock.

Typical wiring::

    limiter = RateLimiter(storage_from_uri("redis://localhost:6379/0"), clock=SystemClock())
    # storage_from_uri: from storno_security.stores
    try:
        status = limiter.hit("login", client_key(peer_ip))   # before any bcrypt (RL-5)
    except RateLimitExceededError as exc:
        ...  # 429, Retry-After: exc.status.retry_after (RL-3)
    except RateLimitUnavailableError:
        ...  # 503 (RL-4)
"""

from storno_security.ratelimit.limiter import (
    RateLimiter,
    RateLimitStatus,
    client_key,
)
from storno_security.ratelimit.policy import (
    API_AUTHENTICATED,
    API_UNAUTHENTICATED,
    FORGOT_PASSWORD,
    GOOGLE_LOGIN,
    LICENSE_VALIDATION,
    LOGIN,
    MFA_VERIFY,
    PASSKEY_LOGIN,
    PASSKEY_LOGIN_OPTIONS,
    REGISTER,
    RESET_PASSWORD,
    SlidingWindowPolicy,
    TokenBucketPolicy,
    spec_policies,
)
from storno_security.ratelimit.storage import Acquisition, RateLimitStorage

__all__ = [
    "API_AUTHENTICATED",
    "API_UNAUTHENTICATED",
    "FORGOT_PASSWORD",
    "GOOGLE_LOGIN",
    "LICENSE_VALIDATION",
    "LOGIN",
    "MFA_VERIFY",
    "PASSKEY_LOGIN",
    "PASSKEY_LOGIN_OPTIONS",
    "REGISTER",
    "RESET_PASSWORD",
    "Acquisition",
    "RateLimitStatus",
    "RateLimitStorage",
    "RateLimiter",
    "SlidingWindowPolicy",
    "TokenBucketPolicy",
    "client_key",
    "spec_policies",
]
