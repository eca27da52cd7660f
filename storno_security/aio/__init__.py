"""The per-request verbs, async: access-token verify, API-key verify, rate-limit hit and
session-state read over native async stores, and bounded thread pools for the rest.

The kit's flows are synchronous (a login's bcrypt is CPU work in any case); an async
application runs them in an :class:`Offloader`, and answers every other request with the
async verbs, which never block the loop::

    from storno_security.aio import AsyncVerbs

    verbs = AsyncVerbs.for_kit(kit, database_url=DATABASE_URL, redis_url=REDIS_URL)
    caller = await verbs.authenticator.authenticate(request.headers.get("Authorization"))
    status = await verbs.limiter.hit("api_authenticated", client_key(peer_ip))
    session = await verbs.offload.cpu(kit.login, email, password)

The async stores read what the synchronous stores write (the same rows, the same keys, the
same statements and scripts): :mod:`storno_security.aio.sql` (SQLAlchemy asyncio on aiosqlite,
psycopg 3 or asyncmy) and :mod:`storno_security.aio.redis` (``redis.asyncio``), each imported
on its own and needing the ``async`` extra.
"""

from storno_security.aio.api_keys import (
    AsyncApiKeyStore,
    AsyncApiKeyVerifier,
    InlineApiKeyStore,
    OffloadedApiKeyStore,
)
from storno_security.aio.offload import Offloader, default_cpu_workers
from storno_security.aio.ratelimit import (
    AsyncRateLimiter,
    AsyncRateLimitStorage,
    InlineRateLimitStorage,
    OffloadedRateLimitStorage,
)
from storno_security.aio.sessions import (
    AsyncSessionStateStore,
    InlineSessionStateStore,
    OffloadedSessionStateStore,
)
from storno_security.aio.verbs import AsyncVerbs
from storno_security.aio.verify import (
    AsyncAccessTokenVerifier,
    AsyncAuthenticator,
    check_session_state,
)

__all__ = [
    "AsyncAccessTokenVerifier",
    "AsyncApiKeyStore",
    "AsyncApiKeyVerifier",
    "AsyncAuthenticator",
    "AsyncRateLimitStorage",
    "AsyncRateLimiter",
    "AsyncSessionStateStore",
    "AsyncVerbs",
    "InlineApiKeyStore",
    "InlineRateLimitStorage",
    "InlineSessionStateStore",
    "OffloadedApiKeyStore",
    "OffloadedRateLimitStorage",
    "OffloadedSessionStateStore",
    "Offloader",
    "check_session_state",
    "default_cpu_workers",
]
