"""The per-request verbs of a kit, async, built from the kit in one call.

:meth:`AsyncVerbs.for_kit` looks at the kit's store bundle and gives each verb that runs on
every request (access-token verify, API-key verify, rate-limit hit, session-state read) its
async form on the same data: the SQL stores on PostgreSQL and MariaDB through an async engine
on the same database, the Redis rate limits through ``redis.asyncio`` on the same keys; memory
stores are read on the loop, and so is SQLite by default (a WAL reader takes no lock, and its
read costs about 20 µs where aiosqlite's thread hand-offs cost about a millisecond; its writes
still run in a thread): ``inline_sqlite=False`` reads it through aiosqlite instead. A store
with no async form (your own, or SQL or Redis without the URL) is run in the offloader's ``io``
lane: correct, never blocking the loop, only slower.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from storno_security.aio.api_keys import (
    AsyncApiKeyStore,
    AsyncApiKeyVerifier,
    InlineApiKeyStore,
    OffloadedApiKeyStore,
)
from storno_security.aio.offload import Offloader
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
from storno_security.aio.verify import AsyncAccessTokenVerifier, AsyncAuthenticator
from storno_security.kit.kit import Kit
from storno_security.stores.memory import (
    MemoryApiKeyStore,
    MemoryRateLimitStorage,
    MemorySessionStateStore,
)
from storno_security.tokens.access import VerifiedTokenCache

__all__ = ["AsyncVerbs"]


def _is_sql(store: object, name: str) -> bool:
    module = sys.modules.get("storno_security.stores.sql")
    return module is not None and isinstance(store, getattr(module, name))


def _is_redis(store: object, name: str) -> bool:
    module = sys.modules.get("storno_security.stores.redis")
    return module is not None and isinstance(store, getattr(module, name))


class AsyncVerbs:
    """A kit's per-request verbs, async (see the module docstring).

    Attributes:
        kit: the kit (its flows run in :attr:`offload`).
        offload: the thread pools for the blocking flows.
        authenticator: ``Authorization`` header -> :class:`~storno_security.kit.Caller`.
        tokens: the access-token verifier.
        api_keys: the API-key verifier.
        limiter: the rate limiter (the kit's policies, shared counts).
        sessions: the session-state read.
    """

    def __init__(
        self,
        kit: Kit,
        *,
        offload: Offloader,
        sessions: AsyncSessionStateStore,
        api_key_store: AsyncApiKeyStore,
        rate_limits: AsyncRateLimitStorage,
        closers: tuple[Any, ...] = (),
    ) -> None:
        self.kit = kit
        self.offload = offload
        self.sessions = sessions
        tokens = kit.policy.tokens
        self.tokens = AsyncAccessTokenVerifier(
            kit.keys.jwt,
            tokens,
            clock=kit.clock,
            sessions=sessions,
            cache=VerifiedTokenCache(tokens.verified_cache_size)
            if tokens.verified_cache_size
            else None,
        )
        self.api_keys = AsyncApiKeyVerifier(
            api_key_store, clock=kit.clock, policy=kit.api_keys.policy
        )
        self.authenticator = AsyncAuthenticator(self.tokens, self.api_keys)
        self.limiter = AsyncRateLimiter(rate_limits, clock=kit.clock, policies=kit.limiter.policies)
        self._closers = closers

    def __repr__(self) -> str:
        return (
            f"AsyncVerbs(sessions={self.sessions!r}, api_keys={self.api_keys!r}, "
            f"limiter={self.limiter!r})"
        )

    @classmethod
    def for_kit(
        cls,
        kit: Kit,
        *,
        database_url: str | None = None,
        redis_url: str | None = None,
        offload: Offloader | None = None,
        redis_timeout: float = 1.0,
        inline_sqlite: bool = True,
    ) -> AsyncVerbs:
        """The async verbs over the kit's stores.

        Args:
            kit: the kit.
            database_url: the URL of the kit's SQL database (a synchronous URL is given its
                async driver); needed for native async reads of SQL stores.
            redis_url: the URL of the kit's Redis; needed for native async rate limits there.
            offload: the thread pools (default: a new :class:`Offloader`).
            redis_timeout: seconds to wait for Redis to connect or answer.
            inline_sqlite: on SQLite, read on the loop with the synchronous store's lean read
                (default) rather than through aiosqlite.

        Raises:
            TypeError: ``kit`` is not a Kit.
            ValueError: a malformed URL, or one with no async driver.
            StoreError: the async driver is not installed (the ``async`` extra).
        """
        if not isinstance(kit, Kit):
            raise TypeError("kit must be a Kit")
        pools = offload if offload is not None else Offloader()
        stores = kit.stores
        closers: list[Any] = []
        if offload is None:  # ours: stopped with the rest
            closers.append(lambda: asyncio.to_thread(pools.close))
        engine = None
        inline = False
        if database_url is not None and inline_sqlite:
            from sqlalchemy import make_url

            inline = make_url(database_url).get_backend_name() == "sqlite"
        if (
            database_url is not None
            and not inline
            and (
                _is_sql(stores.session_state, "SqlSessionStateStore")
                or _is_sql(stores.api_keys, "SqlApiKeyStore")
            )
        ):
            from storno_security.aio.sql import create_async_engine

            engine = create_async_engine(database_url)
            closers.append(engine.dispose)
        client = None
        if redis_url is not None and _is_redis(stores.rate_limits, "RedisRateLimitStorage"):
            import redis.asyncio

            client = redis.asyncio.Redis.from_url(
                redis_url, socket_connect_timeout=redis_timeout, socket_timeout=redis_timeout
            )
            closers.append(client.aclose)  # type: ignore[attr-defined]  # types-redis is older
        return cls(
            kit,
            offload=pools,
            sessions=_sessions(stores.session_state, engine, pools, inline=inline),
            api_key_store=_api_keys(stores.api_keys, engine, pools, inline=inline),
            rate_limits=_rate_limits(stores.rate_limits, client, pools),
            closers=tuple(closers),
        )

    async def aclose(self) -> None:
        """Release what this object made (not the kit's): the async engine, the Redis client
        and the thread pools (once their queued work is done)."""
        for close in self._closers:
            await close()


def _sessions(store: Any, engine: Any, pools: Offloader, *, inline: bool) -> AsyncSessionStateStore:
    if isinstance(store, MemorySessionStateStore) or (
        inline and _is_sql(store, "SqlSessionStateStore")
    ):
        return InlineSessionStateStore(store)
    if engine is not None and _is_sql(store, "SqlSessionStateStore"):
        from storno_security.aio.sql import AsyncSqlSessionStateStore

        return AsyncSqlSessionStateStore(engine)
    return OffloadedSessionStateStore(store, pools)


def _api_keys(store: Any, engine: Any, pools: Offloader, *, inline: bool) -> AsyncApiKeyStore:
    if isinstance(store, MemoryApiKeyStore):
        return InlineApiKeyStore(store)
    if inline and _is_sql(store, "SqlApiKeyStore"):
        return InlineApiKeyStore(store, pools)
    if engine is not None and _is_sql(store, "SqlApiKeyStore"):
        from storno_security.aio.sql import AsyncSqlApiKeyStore

        return AsyncSqlApiKeyStore(engine)
    return OffloadedApiKeyStore(store, pools)


def _rate_limits(store: Any, client: Any, pools: Offloader) -> AsyncRateLimitStorage:
    if isinstance(store, MemoryRateLimitStorage):
        return InlineRateLimitStorage(store)
    if client is not None:
        from storno_security.aio.redis import AsyncRedisRateLimitStorage

        # the synchronous storage's prefix, so both count on the same keys
        return AsyncRedisRateLimitStorage(client, prefix=store._prefix)
    return OffloadedRateLimitStorage(store, pools)
