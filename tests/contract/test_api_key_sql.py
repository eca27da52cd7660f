"""What the SQL API-key store promises beyond the shared contract: one statement per verify,
corrupt rows refused, overlong values refused (never truncated), an unreachable database
reported as such, and no plaintext key anywhere in the table."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from storno_security.api_keys import ApiKeyManager, ApiKeyRecord
from storno_security.clock import FrozenClock
from storno_security.errors import CorruptRecordError, InvalidApiKeyError, StoreUnavailableError
from storno_security.stores.sql import SqlApiKeyStore, api_keys, create_engine
from tests._round_trips import RoundTrips
from tests.contract.conftest import unreachable_databases
from tests.contract.test_api_key_store import new_record

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def statements_of(engine: sa.Engine, call: Any) -> list[str]:
    """The statements ``call`` sends to the database, but transaction control. On SQLite the
    driver's trace and on PostgreSQL libpq's protocol trace (the stores' lean read path runs
    below SQLAlchemy's events); elsewhere SQLAlchemy's ``before_cursor_execute``."""
    statements: list[str] = []

    def keep(statement: str) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            statements.append(statement)

    if engine.dialect.name == "sqlite":
        return _traced(engine, call, keep, statements)
    if engine.dialect.name == "postgresql":  # the lean read path runs below SQLAlchemy here too
        counter = RoundTrips(engine)
        try:
            with counter.window():
                call()
            return counter.statements
        finally:
            counter.close()

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        keep(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        call()
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    return statements


_TRACE: list[Any] = []  # the keep() of the statements_of() running, if any


def _trace_connections(engine: sa.Engine) -> None:
    """Trace every connection the engine opens from now on into the running statements_of()."""

    def on_connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.set_trace_callback(lambda sql: _TRACE and _TRACE[-1](sql))

    sa.event.listen(engine, "connect", on_connect)
    engine.dispose()  # so that every connection from now on is a traced one


def _traced(engine: sa.Engine, call: Any, keep: Any, statements: list[str]) -> list[str]:
    _TRACE.append(keep)
    try:
        call()
    finally:
        _TRACE.pop()
    return statements


def test_table_is_prefixed() -> None:
    assert api_keys.name == "storno_api_keys"


@pytest.mark.spec("KEY-3")
def test_verify_is_one_select_and_writes_once_a_minute(sql_engine: sa.Engine) -> None:
    clock = FrozenClock(NOW)
    if sql_engine.dialect.name == "sqlite":
        _trace_connections(sql_engine)
    manager = ApiKeyManager(SqlApiKeyStore(sql_engine), clock=clock)
    key = manager.create(f"user-{secrets.token_hex(4)}", "org", name="n", scope="read").key
    first = statements_of(sql_engine, lambda: manager.verify(key))
    assert len(first) == 2, first
    assert first[1].lstrip().upper().startswith("UPDATE"), first
    clock.advance(30)
    again = statements_of(sql_engine, lambda: manager.verify(key))
    assert len(again) == 1, again
    assert again[0].lstrip().upper().startswith("SELECT"), again

    def refused() -> None:
        with pytest.raises(InvalidApiKeyError):
            manager.verify(key[:-1] + "!")

    malformed = statements_of(sql_engine, refused)
    assert malformed == []


@pytest.mark.spec("KEY-2")
def test_no_plaintext_key_in_the_table(sql_engine: sa.Engine) -> None:
    manager = ApiKeyManager(SqlApiKeyStore(sql_engine), clock=FrozenClock(NOW))
    created = manager.create(f"user-{secrets.token_hex(4)}", "org", name="n", scope="read")
    secret = created.key[16:59]
    with sql_engine.connect() as conn:
        row = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == created.key_id)).one()
    for value in row:
        text = value.decode() if isinstance(value, bytes) else str(value)
        assert created.key not in text
        assert secret not in text


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("scope", "root", "bad_scope"),
        ("permissions", "{not json", "bad_permissions"),
        ("permissions", '{"a": 1}', "bad_permissions"),
        ("permissions", "[1, 2]", "bad_permissions"),
        ("user_id", "", "bad_user_id"),
    ],
)
def test_corrupt_rows_are_refused(
    sql_engine: sa.Engine, column: str, value: str, reason: str
) -> None:
    store = SqlApiKeyStore(sql_engine)
    record = new_record()
    store.create(record)
    with sql_engine.begin() as conn:
        conn.execute(
            sa.update(api_keys)
            .where(api_keys.c.key_id == record.info.key_id)
            .values({column: value})
        )
    with pytest.raises(CorruptRecordError) as info:
        store.get(record.info.key_id)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "x" * 201), ("user_id", "u" * 256), ("key_id", "k" * 65), ("name", "a\x00b")],
)
def test_overlong_values_are_refused_not_truncated(
    sql_engine: sa.Engine, field: str, value: str
) -> None:
    import attrs

    record = new_record()
    record = attrs.evolve(record, info=attrs.evolve(record.info, **{field: value}))
    with pytest.raises(ValueError, match=field):
        SqlApiKeyStore(sql_engine).create(record)


def test_naive_times_are_refused(sql_engine: sa.Engine) -> None:
    store = SqlApiKeyStore(sql_engine)
    with pytest.raises(ValueError, match="naive"):
        store.touch("k", now=datetime(2026, 1, 1), stale_before=NOW)
    with pytest.raises(ValueError, match="naive"):
        store.revoke("k", now=datetime(2026, 1, 1))


@unreachable_databases
def test_unreachable_database_is_unavailable(url: str, tmp_path: Path) -> None:
    engine = create_engine(url.format(tmp=tmp_path))
    store = SqlApiKeyStore(engine)
    calls = [
        lambda: store.create(new_record()),
        lambda: store.get("k"),
        lambda: store.list_keys(user_id="u"),
        lambda: store.revoke("k", now=NOW),
        lambda: store.revoke_user_keys("u", now=NOW),
        lambda: store.touch("k", now=NOW, stale_before=NOW - timedelta(60)),
    ]
    try:
        for call in calls:
            with pytest.raises(StoreUnavailableError) as caught:
                call()
            assert not isinstance(caught.value, sa.exc.SQLAlchemyError)
    finally:
        engine.dispose()


# --- the lean read of verification (SQLite: per-thread connection, rows decoded once) ---------


def _edit(engine: sa.Engine, key_id: str, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(sa.update(api_keys).where(api_keys.c.key_id == key_id).values(**values))


@pytest.mark.spec("KEY-3")  # revocation takes effect on the next request
def test_a_change_made_elsewhere_is_seen_by_the_next_get(sql_engine: sa.Engine) -> None:
    store = SqlApiKeyStore(sql_engine)
    record = new_record()
    store.create(record)
    first = store.get(record.info.key_id)
    assert first is not None
    assert first.info.revoked_at is None
    if sql_engine.dialect.name == "sqlite":  # the same raw row, read again: its record kept
        second = store.get(record.info.key_id)
        assert second == first
        assert store.get(record.info.key_id) is second
    _edit(sql_engine, record.info.key_id, revoked_at=NOW)
    again = store.get(record.info.key_id)
    assert again is not None
    assert again.info.revoked_at == NOW
    _edit(sql_engine, record.info.key_id, scope="root")
    with pytest.raises(CorruptRecordError) as info:
        store.get(record.info.key_id)
    assert info.value.reason == "bad_scope"
    with sql_engine.begin() as conn:
        conn.execute(sa.delete(api_keys).where(api_keys.c.key_id == record.info.key_id))
    assert store.get(record.info.key_id) is None


def test_gets_from_many_threads_agree(sql_engine: sa.Engine) -> None:
    store = SqlApiKeyStore(sql_engine)
    records = [new_record() for _ in range(4)]
    for record in records:
        store.create(record)

    def read_all(_: int) -> list[ApiKeyRecord | None]:
        return [store.get(r.info.key_id) for r in records for _ in range(5)][::5]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(read_all, range(8)))
    assert all(result == records for result in results)


def test_a_missing_table_is_reported_as_unavailable(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/empty.db")  # no create_schema
    try:
        with pytest.raises(StoreUnavailableError) as caught:
            SqlApiKeyStore(engine).get("k")
        assert not isinstance(caught.value, sa.exc.SQLAlchemyError)
    finally:
        engine.dispose()
