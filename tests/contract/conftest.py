"""Store fixtures for the contract suites: every implementation of a protocol, in turn.

:func:`store_fixture` builds such a fixture from a mapping backend -> constructor, so a suite
names its implementations once::

    last_seen_store = store_fixture(
        "last_seen_store", {"memory": MemoryLastSeenStore, "sql": SqlLastSeenStore}
    )

``"memory"`` is called with no argument, ``"sql"`` with the engine of each SQL backend in turn
(sqlite, postgresql, mariadb; the schema created, skipped or failed without a server) and
``"redis"`` with the test client and ``prefix=`` the run's Redis prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from storno_security.stores import redis as redis_stores
from storno_security.stores import sql as sql_stores
from storno_security.stores.memory import MemoryRefreshFamilyStore, MemorySessionStateStore
from tests.conftest import SQL_BACKENDS, get_sql_engine

Constructors = Mapping[str, Callable[..., Any]]


def backends_of(constructors: Constructors) -> tuple[str, ...]:
    """The fixture params of ``constructors``: its keys, with ``"sql"`` as every SQL backend."""
    backends: list[str] = []
    for key in constructors:
        backends.extend(SQL_BACKENDS if key == "sql" else (key,))
    return tuple(backends)


def make_store(backend: str, request: pytest.FixtureRequest, constructors: Constructors) -> Any:
    """The store of ``backend`` (memory, sqlite, postgresql, mariadb or redis)."""
    if backend == "memory":
        return constructors["memory"]()
    if backend == "redis":
        client = request.getfixturevalue("redis_client")
        prefix = request.getfixturevalue("redis_prefix")
        return constructors["redis"](client, prefix=prefix)
    engine = get_sql_engine(
        backend, request.getfixturevalue("sql_urls"), request.getfixturevalue("sql_engines")
    )
    return constructors["sql"](engine)


def store_fixture(name: str, constructors: Constructors) -> Any:
    """A fixture ``name`` parametrised over every backend in ``constructors``."""

    def fixture(request: pytest.FixtureRequest) -> Any:
        return make_store(str(request.param), request, constructors)

    fixture.__doc__ = f"Every implementation of ``{name}``, in turn: {', '.join(constructors)}."
    return pytest.fixture(params=backends_of(constructors), name=name)(fixture)


#: Parametrises ``url`` over a URL per SQL backend that reaches no database (format ``tmp``).
unreachable_databases = pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://postgres@127.0.0.1:1/x",
        "mysql+pymysql://root@127.0.0.1:1/x",
        "sqlite:///{tmp}/no-such-directory/x.db",
    ],
    ids=["postgresql", "mariadb", "sqlite"],
)

family_store = store_fixture(
    "family_store", {"memory": MemoryRefreshFamilyStore, "sql": sql_stores.SqlRefreshFamilyStore}
)
state_store = store_fixture(
    "state_store",
    {
        "memory": MemorySessionStateStore,
        "sql": sql_stores.SqlSessionStateStore,
        "redis": redis_stores.RedisSessionStateStore,
    },
)
