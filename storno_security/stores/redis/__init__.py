"""Redis stores. Needs the ``redis`` extra.

Every method of every store here is one command or one Lua script: one round trip, atomic. The
short-lived stores are the shared adapters on Redis records (:mod:`._records`). Keys
start with a ``prefix`` (default ``storno:``), so several applications can share one database.
Failures raise :class:`~storno_security.errors.StoreUnavailableError`; a key holding something
no store writes raises :class:`~storno_security.errors.CorruptRecordError`.

The security stores (sessions, MFA, passkeys) need a Redis that never evicts keys
(``maxmemory-policy noeviction``): check it at start-up with :func:`require_noeviction` (or a
store's ``require_noeviction()``). Constructing a store makes no round trip.
"""

from storno_security.stores.redis._base import (
    check_redis_safety,
    eviction_policy,
    require_noeviction,
)
from storno_security.stores.redis.accounts import RedisEmailConfirmationStore, RedisResetTokenStore
from storno_security.stores.redis.license import RedisLastSeenStore
from storno_security.stores.redis.mfa import (
    RedisMfaChallengeStore,
    RedisMfaFailureStore,
    RedisStepUpStore,
    RedisTotpReplayStore,
)
from storno_security.stores.redis.passkeys import RedisPasskeyChallengeStore
from storno_security.stores.redis.ratelimit import RedisRateLimitStorage
from storno_security.stores.redis.tokens import RedisSessionStateStore

__all__ = [
    "RedisEmailConfirmationStore",
    "RedisLastSeenStore",
    "RedisMfaChallengeStore",
    "RedisMfaFailureStore",
    "RedisPasskeyChallengeStore",
    "RedisRateLimitStorage",
    "RedisResetTokenStore",
    "RedisSessionStateStore",
    "RedisStepUpStore",
    "RedisTotpReplayStore",
    "check_redis_safety",
    "eviction_policy",
    "require_noeviction",
]
