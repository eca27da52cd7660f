"""The rate-limit storage named by a URI (RL-4): a store implementation chosen by scheme, so it
lives with the stores (the rate-limit capability never imports them)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from storno_security.ratelimit.storage import RateLimitStorage

__all__ = ["storage_from_uri"]

_REDIS_SCHEMES = ("redis", "rediss", "redis+unix", "redis+sentinel")


def storage_from_uri(
    uri: str,
    *,
    prefix: str = "storno:",
    connect_timeout: float = 1.0,
    timeout: float = 1.0,
) -> RateLimitStorage:
    """Build a storage from a URI (RL-4).

    ``memory://`` gives a :class:`~storno_security.stores.memory.MemoryRateLimitStorage`
    (per process). ``redis://``, ``rediss://``, ``redis+unix://`` and ``redis+sentinel://`` URIs
    are parsed by the ``limits`` package (its storage classes build the redis-py client, so
    every form ``limits`` documents works) and give a
    :class:`~storno_security.stores.redis.RedisRateLimitStorage` on that client, shared across
    processes and hosts. Nothing is connected until the first check. The client retries a
    failed command once, at once (no backoff), so a check against a Redis that is down fails
    within about ``2 * connect_timeout``; a retried script may count one request twice, which
    errs on the strict side.

    Args:
        uri: the storage URI.
        prefix: Redis key prefix.
        connect_timeout: seconds to wait for a Redis connection (unless the URI sets
            ``socket_connect_timeout``).
        timeout: seconds to wait for a Redis reply (unless the URI sets ``socket_timeout``).

    Raises:
        TypeError: ``uri`` or ``prefix`` is not a str.
        ValueError: the scheme is not one of these, or ``limits`` cannot parse the URI.
    """
    if not isinstance(uri, str):
        raise TypeError(f"uri must be a str, not {type(uri).__name__}")
    scheme = urlsplit(uri).scheme
    if scheme == "memory":
        from storno_security.stores.memory.ratelimit import MemoryRateLimitStorage

        return MemoryRateLimitStorage()
    if scheme not in _REDIS_SCHEMES:
        raise ValueError(
            f"unsupported rate-limit storage scheme {scheme!r}; use memory:// or "
            + ", ".join(f"{s}://" for s in _REDIS_SCHEMES)
        )
    from limits.errors import ConfigurationError
    from limits.storage import RedisStorage, storage_from_string
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from storno_security.stores.redis.ratelimit import RedisRateLimitStorage

    try:
        storage = storage_from_string(
            uri,
            socket_connect_timeout=connect_timeout,
            socket_timeout=timeout,
            # one immediate retry (a pooled connection gone stale after a Redis restart), no
            # backoff: redis-py's default retries three times with seconds of backoff, which
            # would hold a request that should get its 503 at once
            retry=Retry(NoBackoff(), 1),  # type: ignore[arg-type]
        )
    except ConfigurationError as exc:
        raise ValueError(f"cannot use this storage URI: {exc}") from None
    if not isinstance(storage, RedisStorage):  # pragma: no cover - limits: each is a RedisStorage
        raise ValueError(f"unsupported rate-limit storage scheme {scheme!r}")
    client: Any = storage.get_connection()
    return RedisRateLimitStorage(client, prefix=prefix)
