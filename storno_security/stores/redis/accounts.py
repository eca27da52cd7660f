"""Password-reset and email-confirmation tokens in Redis: the shared adapters on Redis records,
keys ``{prefix}password-reset:{hash}`` and ``{prefix}email-confirmation:{hash}`` (and the users'
indexes ``...~{user_id}``)."""

from __future__ import annotations

from storno_security.stores._adapters import EmailConfirmations, ResetTokens
from storno_security.stores.redis._records import RedisBacked

__all__ = ["RedisEmailConfirmationStore", "RedisResetTokenStore"]


class RedisResetTokenStore(RedisBacked, ResetTokens):
    """Password-reset token hashes in Redis (see :class:`RedisBacked`)."""


class RedisEmailConfirmationStore(RedisBacked, EmailConfirmations):
    """Email-confirmation token hashes in Redis (see :class:`RedisBacked`)."""
