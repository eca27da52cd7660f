"""Passkey ceremony challenges in Redis: the shared adapter on Redis records, keys
``{prefix}passkey-challenge:{challenge_hash}`` (and ``{prefix}passkey-challenge~{user_id}``).
Consuming is one script that reads and deletes, so of any number of consumers in any number of
processes exactly one gets the record (PK-2)."""

from __future__ import annotations

from storno_security.stores._adapters import PasskeyChallenges
from storno_security.stores.redis._records import RedisBacked

__all__ = ["RedisPasskeyChallengeStore"]


class RedisPasskeyChallengeStore(RedisBacked, PasskeyChallenges):
    """Ceremony challenges in Redis (see :class:`RedisBacked`)."""
