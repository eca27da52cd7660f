"""Store fixtures for the contract suites: every implementation of a protocol, in turn."""

from __future__ import annotations

from typing import Any

import pytest

from storno_security.stores.memory import MemoryRefreshFamilyStore, MemorySessionStateStore
from tests.conftest import get_sql_engine

FAMILY_BACKENDS = ("memory", "sqlite", "postgresql", "mariadb")
STATE_BACKENDS = ("memory", "sqlite", "postgresql", "mariadb", "redis")


@pytest.fixture(params=FAMILY_BACKENDS)
def family_store(
    request: pytest.FixtureRequest,
    sql_urls: dict[str, str | None],
    sql_engines: dict[str, Any],
) -> Any:
    backend = str(request.param)
    if backend == "memory":
        return MemoryRefreshFamilyStore()
    from storno_security.stores.sql import SqlRefreshFamilyStore

    return SqlRefreshFamilyStore(get_sql_engine(backend, sql_urls, sql_engines))


@pytest.fixture(params=STATE_BACKENDS)
def state_store(
    request: pytest.FixtureRequest,
    sql_urls: dict[str, str | None],
    sql_engines: dict[str, Any],
) -> Any:
    backend = str(request.param)
    if backend == "memory":
        return MemorySessionStateStore()
    if backend == "redis":
        from storno_security.stores.redis import RedisSessionStateStore

        client = request.getfixturevalue("redis_client")
        prefix = request.getfixturevalue("redis_prefix")
        return RedisSessionStateStore(client, prefix=prefix)
    from storno_security.stores.sql import SqlSessionStateStore

    return SqlSessionStateStore(get_sql_engine(backend, sql_urls, sql_engines))
