"""The async SQL engines and their transactions (``aio/_sql.py``, ``aio/sql.py``): the URL gets
an async driver or is refused, an engine argument or a missing driver is a configuration error,
and a transaction translates driver errors and refuses unreadable or repeated rows, as the
synchronous stores do."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from storno_security.aio._sql import async_url, fetch_all, one_row, transaction
from storno_security.aio.sql import (
    AsyncSqlApiKeyStore,
    AsyncSqlSessionStateStore,
    create_async_engine,
)
from storno_security.errors import CorruptRecordError, StoreError, StoreUnavailableError
from storno_security.stores.sql._base import _ExactString, _UtcDateTime
from tests.aio.conftest import LoopThread, get_async_engine
from tests.contract._scratch import insert_raw, scratch_table

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_a_malformed_url_is_refused_without_quoting_it() -> None:
    for url in ("hunter2", "postgresql://user:hunter2@host:notaport/x"):
        with pytest.raises(ValueError, match="malformed") as caught:
            async_url(url)
        assert "hunter2" not in repr(caught.value)
        assert caught.value.__cause__ is None


def test_a_backend_without_an_async_driver_is_refused() -> None:
    with pytest.raises(ValueError, match="no async driver for the oracle backend"):
        async_url("oracle://scott@127.0.0.1:1/x")


def test_a_url_naming_an_async_driver_is_kept() -> None:
    url = async_url("postgresql+asyncpg://app@127.0.0.1:1/x")
    assert url.drivername == "postgresql+asyncpg"
    assert async_url("mysql+pymysql://app@127.0.0.1:1/x").drivername == "mysql+asyncmy"


def test_an_async_driver_that_is_not_installed_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "aiomysql", None)  # as if the package were not there
    with pytest.raises(StoreError) as caught:
        create_async_engine("mysql+aiomysql://root@127.0.0.1:1/x")
    assert caught.value.reason == "config"


def test_an_engine_argument_sqlalchemy_refuses_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="engine argument") as caught:
        create_async_engine(f"sqlite:///{tmp_path}/x.db", pool_reset_on_return="bogus")
    assert isinstance(caught.value.__cause__, sa.exc.ArgumentError)


def test_the_async_stores_name_their_dialect(loop_thread: LoopThread, tmp_path: Path) -> None:
    async def names() -> tuple[str, str]:
        engine = create_async_engine(f"sqlite:///{tmp_path}/x.db")
        try:
            return repr(AsyncSqlSessionStateStore(engine)), repr(AsyncSqlApiKeyStore(engine))
        finally:
            await engine.dispose()

    assert loop_thread.run(names()) == (
        "AsyncSqlSessionStateStore(sqlite)",
        "AsyncSqlApiKeyStore(sqlite)",
    )


# --- transactions ----------------------------------------------------------------------------

BACKENDS = ("sqlite", "postgresql", "mariadb")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_driver_error_in_an_async_transaction_is_translated(
    backend: str, request: pytest.FixtureRequest, loop_thread: LoopThread
) -> None:
    engine = get_async_engine(backend, request)

    def bad_statement(sync_conn: sa.Connection) -> None:
        # Straight on the driver's connection: an error SQLAlchemy never wrapped.
        cursor = sync_conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute("SELECT * FROM storno_no_such_table_at_all")
        finally:
            cursor.close()

    async def run() -> BaseException:
        with pytest.raises(StoreUnavailableError) as caught:
            async with transaction(engine) as conn:
                await conn.run_sync(bad_statement)
        return caught.value

    error = loop_thread.run(run())
    assert error.reason == "unavailable"
    assert isinstance(error.__cause__, engine.dialect.loaded_dbapi.Error)


@pytest.mark.parametrize("backend", BACKENDS)
def test_repeated_rows_are_a_corrupt_record(
    backend: str, request: pytest.FixtureRequest, loop_thread: LoopThread
) -> None:
    engine = get_async_engine(backend, request)
    from tests.conftest import get_sql_engine

    sync = get_sql_engine(
        backend, request.getfixturevalue("sql_urls"), request.getfixturevalue("sql_engines")
    )
    columns = {"k": ("VARCHAR(64)", sa.String(64)), "label": ("VARCHAR(64)", _ExactString(64))}
    with scratch_table(sync, columns) as table:
        insert_raw(sync, table, {"k": "twice", "label": "a"}, {"k": "twice", "label": "b"})
        query = sa.select(table.c.label).where(table.c.k == sa.bindparam("k"))

        async def read(k: str) -> Any:
            async with transaction(engine, read_only=True) as conn:
                return one_row(await fetch_all(conn, query, {"k": k}))

        with pytest.raises(CorruptRecordError) as caught:
            loop_thread.run(read("twice"))
        assert caught.value.reason == "duplicate_row"
        assert loop_thread.run(read("none")) is None


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_value_the_column_type_cannot_read_is_a_corrupt_record(
    backend: str, request: pytest.FixtureRequest, loop_thread: LoopThread
) -> None:
    engine = get_async_engine(backend, request)
    from tests.conftest import get_sql_engine

    sync = get_sql_engine(
        backend, request.getfixturevalue("sql_urls"), request.getfixturevalue("sql_engines")
    )
    columns = {"k": ("VARCHAR(64)", sa.String(64)), "at": ("VARCHAR(64)", _UtcDateTime())}
    with scratch_table(sync, columns) as table:
        insert_raw(sync, table, {"k": "k", "at": "not a time"})

        async def read() -> Any:
            async with transaction(engine, read_only=True) as conn:
                return await fetch_all(conn, sa.select(table.c.at))

        with pytest.raises(CorruptRecordError) as caught:
            loop_thread.run(read())
        assert caught.value.reason == "unreadable"


def test_a_touch_that_changes_two_rows_is_a_corrupt_record(
    tmp_path: Path, loop_thread: LoopThread
) -> None:
    """A table that lost its primary key (copied by ``CREATE TABLE ... AS``) and holds one key
    twice: the conditional ``UPDATE`` of one key changes two rows."""
    from storno_security.stores import sql as sql_store

    url = f"sqlite:///{tmp_path}/keys.db"
    sync = sql_store.create_engine(url)
    try:
        sql_store.create_schema(sync)
        with sync.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE storno_api_keys RENAME TO old_keys")
            conn.exec_driver_sql("CREATE TABLE storno_api_keys AS SELECT * FROM old_keys")
            for key_hash in ("h1", "h2"):
                conn.execute(
                    sa.text(
                        "INSERT INTO storno_api_keys (key_id, key_hash, user_id,"
                        " organization_id, name, scope, created_at)"
                        " VALUES ('twice', :h, 'u', 'o', 'n', 'user', '2026-03-01 12:00:00')"
                    ),
                    {"h": key_hash},
                )
    finally:
        sync.dispose()

    async def touch() -> BaseException:
        engine = create_async_engine(url)
        try:
            with pytest.raises(CorruptRecordError) as caught:
                await AsyncSqlApiKeyStore(engine).touch(
                    "twice", now=NOW, stale_before=NOW - timedelta(minutes=1)
                )
            return caught.value
        finally:
            await engine.dispose()

    assert loop_thread.run(touch()).reason == "duplicate_row"
