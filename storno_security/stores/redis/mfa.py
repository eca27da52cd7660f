"""MFA stores in Redis: the shared adapters on Redis records (see
:mod:`storno_security.stores.redis._records`). Backup codes live in SQL or memory: they are
long-lived records, not cache entries.

Keys (``prefix`` defaults to ``storno:``): ``{prefix}mfa:totp:{user_id}``,
``{prefix}mfa:challenge:{token_hash}``, ``{prefix}mfa:stepup:{token_hash}``,
``{prefix}mfa:failures:{user_id}``, each a hash kept until the record ends, and the users'
indexes ``{prefix}mfa:{kind}~{user_id}``.
"""

from __future__ import annotations

from storno_security.stores._adapters import MfaChallenges, MfaFailures, StepUps, TotpReplay
from storno_security.stores.redis._records import RedisBacked

__all__ = [
    "RedisMfaChallengeStore",
    "RedisMfaFailureStore",
    "RedisStepUpStore",
    "RedisTotpReplayStore",
]


class RedisTotpReplayStore(RedisBacked, TotpReplay):
    """The last accepted TOTP step of each user, in Redis (see :class:`RedisBacked`)."""


class RedisMfaChallengeStore(RedisBacked, MfaChallenges):
    """MFA login challenges in Redis (see :class:`RedisBacked`)."""


class RedisStepUpStore(RedisBacked, StepUps):
    """Step-up verification tokens in Redis (see :class:`RedisBacked`)."""


class RedisMfaFailureStore(RedisBacked, MfaFailures):
    """Per-user counts of second-factor attempts in Redis (see :class:`RedisBacked`)."""
