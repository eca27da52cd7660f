"""Store builders for the MFA contract suites: every implementation of a protocol, in turn."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import get_sql_engine

REPLAY_BACKENDS = ("memory", "sqlite", "postgresql", "mariadb", "redis")
BACKUP_BACKENDS = ("memory", "sqlite", "postgresql", "mariadb")
CHALLENGE_BACKENDS = ("memory", "sqlite", "postgresql", "mariadb", "redis")
STEP_UP_BACKENDS = ("memory", "sqlite", "postgresql", "mariadb", "redis")


def build_store(kind: str, backend: str, request: pytest.FixtureRequest) -> Any:
    """The ``kind`` store (replay, backup, challenge, step_up) over ``backend``."""
    if backend == "memory":
        from storno_security.stores import memory

        return {
            "replay": memory.MemoryTotpReplayStore,
            "backup": memory.MemoryBackupCodeStore,
            "challenge": memory.MemoryMfaChallengeStore,
            "step_up": memory.MemoryStepUpStore,
        }[kind]()
    if backend == "redis":
        from storno_security.stores import redis as redis_stores

        client = request.getfixturevalue("redis_client")
        prefix = request.getfixturevalue("redis_prefix")
        return {
            "replay": redis_stores.RedisTotpReplayStore,
            "challenge": redis_stores.RedisMfaChallengeStore,
            "step_up": redis_stores.RedisStepUpStore,
        }[kind](client, prefix=prefix)
    from storno_security.stores import sql

    engine = get_sql_engine(
        backend, request.getfixturevalue("sql_urls"), request.getfixturevalue("sql_engines")
    )
    return {
        "replay": sql.SqlTotpReplayStore,
        "backup": sql.SqlBackupCodeStore,
        "challenge": sql.SqlMfaChallengeStore,
        "step_up": sql.SqlStepUpStore,
    }[kind](engine)
