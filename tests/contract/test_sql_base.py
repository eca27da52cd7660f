"""The shared machinery of the SQL stores (``stores/sql/_base.py``): engine arguments, the
recorded schema version, error translation in transactions, and the checks every store runs on
the values it reads and the rows it changes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from storno_security.errors import CorruptRecordError, StoreError, StoreUnavailableError
from storno_security.stores import sql as sql_store
from storno_security.stores.sql._base import (
    _changed_each,
    _changed_one,
    _count_of,
    _ExactString,
    _existing_row,
    _required_time,
    _transaction,
    _upsert,
)
from tests.contract._scratch import insert_raw, scratch_table

KEY = ("VARCHAR(64)", sa.String(64))
LABEL = ("VARCHAR(64)", _ExactString(64))


def test_an_engine_argument_sqlalchemy_refuses_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="engine argument") as caught:
        sql_store.create_engine(f"sqlite:///{tmp_path}/x.db", pool_reset_on_return="bogus")
    assert isinstance(caught.value.__cause__, sa.exc.ArgumentError)


def test_a_store_names_its_dialect(sql_engine: sa.Engine) -> None:
    store = sql_store.SqlApiKeyStore(sql_engine)
    assert repr(store) == f"SqlApiKeyStore({sql_engine.dialect.name})"


# --- the schema version ----------------------------------------------------------------------


def test_a_schema_without_a_version_row_has_no_version(tmp_path: Path) -> None:
    engine = sql_store.create_engine(f"sqlite:///{tmp_path}/v.db")
    try:
        sql_store.create_schema(engine)
        with engine.begin() as conn:
            conn.execute(sa.delete(sql_store.schema_versions))
        assert sql_store.schema_version(engine) is None
    finally:
        engine.dispose()


def test_a_version_that_is_not_a_number_is_corrupt(tmp_path: Path) -> None:
    engine = sql_store.create_engine(f"sqlite:///{tmp_path}/v.db")
    try:
        sql_store.create_schema(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE storno_schema_versions SET version = 'two'")
        with pytest.raises(CorruptRecordError) as caught:
            sql_store.schema_version(engine)
        assert caught.value.reason == "bad_schema_version"
    finally:
        engine.dispose()


# --- error translation -----------------------------------------------------------------------


def test_a_write_the_database_refuses_is_an_integrity_error(sql_engine: sa.Engine) -> None:
    with scratch_table(sql_engine, {"k": ("VARCHAR(64) NOT NULL", sa.String(64))}) as table:
        with pytest.raises(StoreError) as caught, _transaction(sql_engine) as conn:
            conn.execute(sa.insert(table).values(k=None))
        assert caught.value.reason == "integrity"
        with (
            pytest.raises(StoreError) as duplicate,
            _transaction(sql_engine, duplicate=True) as conn,
        ):
            conn.execute(sa.insert(table).values(k=None))
        assert duplicate.value.reason == "duplicate"


def _driver_cursor_error(conn: sa.Connection) -> None:
    """Run a bad statement straight on the driver's connection: an error SQLAlchemy never saw."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute("SELECT * FROM storno_no_such_table_at_all")
    finally:
        cursor.close()


def test_a_driver_error_in_a_transaction_is_translated(sql_engine: sa.Engine) -> None:
    driver_error = sql_engine.dialect.loaded_dbapi.Error
    with pytest.raises(StoreUnavailableError) as caught, _transaction(sql_engine) as conn:
        _driver_cursor_error(conn)
    assert caught.value.reason == "unavailable"
    assert isinstance(caught.value.__cause__, driver_error)


def test_a_driver_error_in_a_read_transaction_is_translated(sql_engine: sa.Engine) -> None:
    driver_error = sql_engine.dialect.loaded_dbapi.Error
    with (
        pytest.raises(StoreUnavailableError) as caught,
        sql_store.read_transaction(sql_engine) as conn,
    ):
        _driver_cursor_error(conn)
    assert caught.value.reason == "unavailable"
    assert isinstance(caught.value.__cause__, driver_error)


# --- checks on what is read and changed ------------------------------------------------------


@pytest.mark.parametrize("value", [None, "2026-03-01", datetime(2026, 3, 1)])
def test_a_required_time_must_be_an_aware_datetime(value: object) -> None:
    with pytest.raises(CorruptRecordError) as caught:
        _required_time(value)
    assert caught.value.reason == "bad_datetime"
    aware = datetime(2026, 3, 1, tzinfo=UTC)
    assert _required_time(aware) is aware


@pytest.mark.parametrize("value", [True, -1, "3", 1.0, None])
def test_a_count_must_be_a_non_negative_int(value: object) -> None:
    with pytest.raises(CorruptRecordError) as caught:
        _count_of(value, "bad_failures")
    assert caught.value.reason == "bad_failures"
    assert _count_of(0) == 0
    assert _count_of(7) == 7


def test_changing_a_row_that_is_there_twice_is_corrupt(sql_engine: sa.Engine) -> None:
    with scratch_table(sql_engine, {"k": KEY, "label": LABEL}) as table:
        insert_raw(sql_engine, table, {"k": "twice", "label": "a"}, {"k": "twice", "label": "a"})
        change = sa.update(table).where(table.c.k == "twice").values(label="b")
        with pytest.raises(CorruptRecordError) as caught, _transaction(sql_engine) as conn:
            _changed_one(conn, change)
        assert caught.value.reason == "duplicate_row"
        with sql_engine.connect() as conn:  # rolled back
            assert conn.execute(sa.select(table.c.label)).scalars().all() == ["a", "a"]


def test_a_row_that_must_be_there_and_is_not_is_corrupt(sql_engine: sa.Engine) -> None:
    with scratch_table(sql_engine, {"k": KEY, "label": LABEL}) as table:
        query = sa.select(table.c.label).where(table.c.k == "gone")
        with pytest.raises(CorruptRecordError) as caught, _transaction(sql_engine) as conn:
            _existing_row(conn, query, reason="no_user")
        assert caught.value.reason == "no_user"


def test_only_the_rows_a_statement_changed_are_reported(sql_engine: sa.Engine) -> None:
    with scratch_table(sql_engine, {"k": KEY, "label": LABEL}) as table:
        insert_raw(
            sql_engine,
            table,
            {"k": "b", "label": "live"},
            {"k": "a", "label": "live"},
            {"k": "c", "label": "done"},
        )

        def finish(k: str) -> sa.Update:
            return (
                sa.update(table).where(table.c.k == k, table.c.label == "live").values(label="done")
            )

        with _transaction(sql_engine) as conn:
            changed = _changed_each(conn, sa.select(table.c.k), finish, "bad_k")
        assert changed == ["a", "b"]  # c was done already: listed, not changed


def test_an_id_that_is_not_text_is_corrupt(sql_engine: sa.Engine) -> None:
    with scratch_table(sql_engine, {"k": KEY, "label": LABEL}) as table:
        insert_raw(sql_engine, table, {"k": "", "label": "live"})
        with pytest.raises(CorruptRecordError) as caught, _transaction(sql_engine) as conn:
            _changed_each(conn, sa.select(table.c.k), lambda k: sa.select(1), "bad_k")
        assert caught.value.reason == "bad_k"


def test_there_is_no_upsert_for_another_dialect() -> None:
    table = sa.Table("t", sa.MetaData(), sa.Column("k", sa.String(8), primary_key=True))
    with pytest.raises(StoreError) as caught:
        _upsert("oracle", table, {"k": "x"})
    assert caught.value.reason == "config"
