"""The license's last verified times in Redis: the shared adapter on Redis records, keys
``{prefix}license:{key}`` that never expire (the Redis must persist them to remember)."""

from __future__ import annotations

from storno_security.stores._adapters import LastSeen
from storno_security.stores.redis._records import RedisBacked

__all__ = ["RedisLastSeenStore"]


class RedisLastSeenStore(RedisBacked, LastSeen):
    """Last verified times in Redis (see :class:`RedisBacked`)."""
