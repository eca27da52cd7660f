"""Shared fixtures: frozen clock, and the real servers the store tests run against.

Each SQL backend gets a database of its own for this test run (created here, dropped at the end);
Redis gets a key prefix of its own (its keys are deleted at the end). Without a server the tests
that need it skip with a reason; with ``CI=true`` they fail instead.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from storno_security.clock import FrozenClock

IN_CI = os.environ.get("CI", "").lower() == "true"

# No test asserts on wall-clock time, and a Hypothesis deadline is such an assertion: a
# property that runs bcrypt, RSA or an XML signature fails it on a loaded machine for reasons
# that have nothing to do with the code. Examples are bounded by ``max_examples`` instead; speed
# is measured in bench/. ``print_blob`` gives the failing example's reproduction line.
hypothesis_settings.register_profile("storno", deadline=None, print_blob=True)
hypothesis_settings.load_profile("storno")

PG_ADMIN_URL = os.environ.get(
    "STORNO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_ADMIN_URL = os.environ.get(
    "STORNO_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
)
REDIS_URL = os.environ.get("STORNO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

SQL_BACKENDS = ("sqlite", "postgresql", "mariadb")

RUN_ID = secrets.token_hex(4)


def missing_service(what: str, detail: str) -> None:
    """Skip (or, under CI=true, fail) a test whose server is not reachable."""
    message = f"{what} not reachable ({detail})"
    if IN_CI:
        pytest.fail(f"{message}; CI=true requires every service", pytrace=False)
    pytest.skip(message)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture
def clock() -> FrozenClock:
    """A frozen clock at 2026-03-01T12:00:00Z."""
    return FrozenClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


# --- SQL databases ---------------------------------------------------------------------------


def _make_database(admin_url: str, name: str) -> str:
    import sqlalchemy as sa

    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    finally:
        admin.dispose()
    return str(sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False))


def _drop_database(admin_url: str, name: str, *, force: bool) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            suffix = " WITH (FORCE)" if force else ""
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{suffix}")
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def sql_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str | None]]:
    """One fresh database per SQL backend for this run; ``None`` where the server is down."""
    urls: dict[str, str | None] = {}
    created: list[tuple[str, str, bool]] = []
    db_name = f"storno_t_{RUN_ID}"
    sqlite_path = Path(tmp_path_factory.mktemp("sqlite")) / "storno.db"
    urls["sqlite"] = f"sqlite:///{sqlite_path}"
    for backend, admin_url, port, force in (
        ("postgresql", PG_ADMIN_URL, 5432, True),
        ("mariadb", MYSQL_ADMIN_URL, 3306, False),
    ):
        if not _port_open("127.0.0.1", port):
            urls[backend] = None
            continue
        urls[backend] = _make_database(admin_url, db_name)
        created.append((admin_url, db_name, force))
    yield urls
    for admin_url, name, force in created:
        _drop_database(admin_url, name, force=force)


@pytest.fixture(scope="session")
def sql_engines(sql_urls: dict[str, str | None]) -> Iterator[dict[str, Any]]:
    """Engines (schema created) per backend, made lazily and disposed at the end."""
    engines: dict[str, Any] = {}
    yield engines
    for engine in engines.values():
        engine.dispose()


def get_sql_engine(backend: str, sql_urls: dict[str, str | None], engines: dict[str, Any]) -> Any:
    """Return the engine of ``backend`` with the library's schema created, or skip/fail."""
    from storno_security.stores import sql as sql_store

    url = sql_urls[backend]
    if url is None:
        missing_service(backend, "no server on its port")
    assert url is not None
    if backend not in engines:
        engine = sql_store.create_engine(url)
        sql_store.create_schema(engine)
        engines[backend] = engine
    return engines[backend]


@pytest.fixture(params=SQL_BACKENDS)
def sql_engine(
    request: pytest.FixtureRequest,
    sql_urls: dict[str, str | None],
    sql_engines: dict[str, Any],
) -> Any:
    """The library's SQL engine over each backend in turn."""
    return get_sql_engine(str(request.param), sql_urls, sql_engines)


# --- Redis -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_prefix() -> Iterator[str]:
    """A key prefix of this run's own; its keys are deleted at the end."""
    prefix = f"storno-test:{RUN_ID}:"
    yield prefix
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    except Exception:  # noqa: S110 - best-effort cleanup of a server that may be gone
        pass


@pytest.fixture
def redis_client(redis_prefix: str) -> Iterator[Any]:
    """A redis-py client of the test server, or skip/fail."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        missing_service("redis", type(exc).__name__)
    yield client
    client.close()
