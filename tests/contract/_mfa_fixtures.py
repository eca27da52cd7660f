"""Store constructors for the MFA contract suites: every implementation of a protocol, by kind."""

from __future__ import annotations

from storno_security.stores import memory, sql
from storno_security.stores import redis as redis_stores
from tests.contract.conftest import Constructors

#: kind (replay, backup, challenge, step_up) -> backend -> constructor
CONSTRUCTORS: dict[str, Constructors] = {
    "replay": {
        "memory": memory.MemoryTotpReplayStore,
        "sql": sql.SqlTotpReplayStore,
        "redis": redis_stores.RedisTotpReplayStore,
    },
    "backup": {"memory": memory.MemoryBackupCodeStore, "sql": sql.SqlBackupCodeStore},
    "challenge": {
        "memory": memory.MemoryMfaChallengeStore,
        "sql": sql.SqlMfaChallengeStore,
        "redis": redis_stores.RedisMfaChallengeStore,
    },
    "step_up": {
        "memory": memory.MemoryStepUpStore,
        "sql": sql.SqlStepUpStore,
        "redis": redis_stores.RedisStepUpStore,
    },
}
