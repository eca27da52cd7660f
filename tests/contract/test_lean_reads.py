"""The stores' lean reads (one ``SELECT`` on a kept autocommit connection, issue 18): a kept
PostgreSQL connection that the server dropped is replaced and the read sent again, once, as the
pool's pre-ping would have done; a disposed engine's connection is not used again."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from storno_security.errors import CorruptRecordError, StoreError
from storno_security.stores.sql import SqlSessionStateStore, add_direct_read_hooks, create_schema
from storno_security.stores.sql import _base as sql_base
from storno_security.stores.sql._base import _ExactString, _Reader, _SqlStore, _UtcDateTime
from storno_security.tokens.storage import SessionState
from tests._fork import in_a_forked_child
from tests.conftest import get_sql_engine, missing_service
from tests.contract._scratch import insert_raw, scratch_table


def _backend_pid(store: SqlSessionStateStore) -> int:
    connection, _ = store._state._connections.get()
    return int(connection.info.backend_pid)


def _read_once_on_postgresql(
    sql_urls: dict[str, str | None], sql_engines: dict[str, object]
) -> tuple[sa.Engine, SqlSessionStateStore, str, str]:
    """A PostgreSQL engine and a session-state store over it that has read once (its lean
    connection is kept), with the user and session it read."""
    engine = get_sql_engine("postgresql", sql_urls, sql_engines)
    assert isinstance(engine, sa.Engine)
    store = SqlSessionStateStore(engine)
    user, session = f"user-{secrets.token_hex(4)}", secrets.token_hex(16)
    assert store.session_state(user_id=user, session_id=session).epoch == 0
    return engine, store, user, session


def test_a_dropped_postgresql_connection_is_replaced(
    sql_urls: dict[str, str | None], sql_engines: dict[str, object]
) -> None:
    engine, store, user, session = _read_once_on_postgresql(sql_urls, sql_engines)
    kept = _backend_pid(store)
    with engine.connect() as admin:
        admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": kept})
        admin.commit()
    store.bump_epoch(user)
    assert store.session_state(user_id=user, session_id=session).epoch == 1
    assert _backend_pid(store) != kept


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_disposed_engine_reads_on_a_new_connection(
    backend: str, sql_urls: dict[str, str | None], sql_engines: dict[str, object]
) -> None:
    engine = get_sql_engine(backend, sql_urls, sql_engines)
    assert isinstance(engine, sa.Engine)
    store = SqlSessionStateStore(engine)
    user, session = f"user-{secrets.token_hex(4)}", secrets.token_hex(16)
    store.session_state(user_id=user, session_id=session)
    before, _ = store._state._connections.get()
    engine.dispose()
    after, fresh = store._state._connections.get()
    assert fresh
    assert after is not before
    assert store.session_state(user_id=user, session_id=session).epoch == 0


# --- what a lean read makes of the rows it finds -----------------------------------------------
#
# A reader over a table of the test's own (tests.contract._scratch), whose database types may
# differ from those the code reads them as. SQLite and PostgreSQL read lean (straight on the
# driver); MariaDB reads in an ordinary transaction: each must answer the same.

KEY = ("VARCHAR(64)", sa.String(64))  # a plain string: no bind processor
AS_TEXT_TIME = ("VARCHAR(64)", _UtcDateTime())
NOT_TEXT = {"sqlite": "BLOB", "postgresql": "INTEGER", "mariadb": "INTEGER"}


def _reader(engine: sa.Engine, table: sa.Table, *columns: str) -> _Reader[Any]:
    statement = sa.select(*(table.c[c] for c in columns)).where(table.c.k == sa.bindparam("k"))
    return _Reader(engine, statement, lambda row: row)


def _backend(engine: sa.Engine) -> str:
    return "mariadb" if engine.dialect.name in ("mysql", "mariadb") else engine.dialect.name


#: What a time stored as text that is no time is reported as: SQLite's parser refuses the text
#: ("unreadable"); PostgreSQL (a text column: the driver hands the str over) and MariaDB (the
#: ordinary read) find a value that is not a datetime.
UNREADABLE_TIME_REASON = {
    "sqlite": "unreadable",
    "postgresql": "bad_datetime",
    "mariadb": "bad_datetime",
}


def test_a_time_that_is_no_time_is_a_corrupt_record(sql_engine: sa.Engine) -> None:
    with scratch_table(sql_engine, {"k": KEY, "at": AS_TEXT_TIME}) as table:
        insert_raw(sql_engine, table, {"k": "bad", "at": "not a time"})
        reader = _reader(sql_engine, table, "at")
        with pytest.raises(CorruptRecordError) as caught:
            reader.one_or_none({"k": "bad"})
        assert caught.value.reason == UNREADABLE_TIME_REASON[_backend(sql_engine)]
        assert reader.one_or_none({"k": "missing"}) is None


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_time_with_a_zone_is_read_as_utc(
    backend: str, sql_urls: dict[str, str | None], sql_engines: dict[str, Any]
) -> None:
    engine = get_sql_engine(backend, sql_urls, sql_engines)
    at = ("TIMESTAMP WITH TIME ZONE", _UtcDateTime())
    with scratch_table(engine, {"k": KEY, "at": at}) as table:
        insert_raw(engine, table, {"k": "k", "at": "2026-03-01 14:00:00+02:00"})
        statement = sa.select(table.c.at).where(table.c.k == "k")
        expected = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
        (lean,) = _reader(engine, table, "at").one_or_none({"k": "k"})
        assert lean == expected
        assert lean.tzinfo is UTC
        (plain,) = _SqlStore(engine)._read_one(statement, lambda row: row)
        assert plain == expected
        assert plain.tzinfo is UTC


#: What a value that is not text in an exact-string column is reported as: on SQLite a BLOB is
#: decoded as UTF-8 (invalid UTF-8: "unreadable"); a number elsewhere is not text.
NOT_TEXT_CASES = {
    "sqlite": (b"\xff\xfe", "unreadable"),
    "postgresql": (5, "bad_text"),
    "mariadb": (5, "bad_text"),
}


def test_a_value_that_is_not_text_in_an_exact_string_column_is_corrupt(
    sql_engine: sa.Engine,
) -> None:
    backend = _backend(sql_engine)
    label = (NOT_TEXT[backend], _ExactString(64))
    value, reason = NOT_TEXT_CASES[backend]
    with scratch_table(sql_engine, {"k": KEY, "label": label}) as table:
        insert_raw(sql_engine, table, {"k": "bad", "label": value}, {"k": "none", "label": None})
        reader = _reader(sql_engine, table, "label")
        with pytest.raises(CorruptRecordError) as caught:
            reader.one_or_none({"k": "bad"})
        assert caught.value.reason == reason
        assert reader.one_or_none({"k": "none"}) == (None,)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_text_stored_as_utf8_bytes_reads_as_text(
    backend: str, sql_urls: dict[str, str | None], sql_engines: dict[str, Any]
) -> None:
    engine = get_sql_engine(backend, sql_urls, sql_engines)
    with scratch_table(engine, {"k": KEY, "label": ("BLOB", _ExactString(64))}) as table:
        insert_raw(engine, table, {"k": "k", "label": "Zoë".encode()})
        assert _reader(engine, table, "label").one_or_none({"k": "k"}) == ("Zoë",)


def test_two_rows_for_one_read_are_a_corrupt_record(sql_engine: sa.Engine) -> None:
    with scratch_table(sql_engine, {"k": KEY, "label": ("VARCHAR(64)", _ExactString(64))}) as table:
        insert_raw(sql_engine, table, {"k": "twice", "label": "a"}, {"k": "twice", "label": "b"})
        with pytest.raises(CorruptRecordError) as caught:
            _reader(sql_engine, table, "label").one_or_none({"k": "twice"})
        assert caught.value.reason == "duplicate_row"


def test_collect_builds_one_record_of_every_row(sql_engine: sa.Engine) -> None:
    with scratch_table(sql_engine, {"k": KEY, "label": ("VARCHAR(64)", _ExactString(64))}) as table:
        insert_raw(sql_engine, table, {"k": "k", "label": "a"}, {"k": "k", "label": "b"})
        statement = (
            sa.select(table.c.label).where(table.c.k == sa.bindparam("k")).order_by(table.c.label)
        )
        reader = _Reader(sql_engine, statement, lambda rows: tuple(r.label for r in rows))
        first = reader.collect({"k": "k"})
        assert first == ("a", "b")
        assert reader.collect({"k": "k"}) == first
        assert reader.collect({"k": "nothing"}) is None
        insert_raw(sql_engine, table, {"k": "k", "label": "c"})
        assert reader.collect({"k": "k"}) == ("a", "b", "c")  # read again, not remembered


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_records_kept_by_a_lean_reader_are_bounded(
    backend: str,
    sql_urls: dict[str, str | None],
    sql_engines: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = get_sql_engine(backend, sql_urls, sql_engines)
    monkeypatch.setattr(sql_base, "_MEMO_SIZE", 1)
    with scratch_table(engine, {"k": KEY, "label": ("VARCHAR(64)", _ExactString(64))}) as table:
        insert_raw(engine, table, {"k": "a", "label": "x"}, {"k": "b", "label": "y"})
        one = _reader(engine, table, "label")
        statement = sa.select(table.c.label).where(table.c.k == sa.bindparam("k"))
        every = _Reader(engine, statement, lambda rows: [r.label for r in rows])
        for key, label in (("a", "x"), ("b", "y")):
            for _ in range(2):  # a row is kept from its second sighting on
                assert one.one_or_none({"k": key}) == (label,)
                assert every.collect({"k": key}) == [label]
        assert list(one._memo.values()) == [("y",)]
        assert list(every._memo.values()) == [["y"]]
        assert len(one._seen) == len(every._seen) == 1  # the sightings are bounded too
    # full, a reader evicts its oldest sixteenth, not the lot: freeing thousands of kept
    # records at once paused the request that filled it
    monkeypatch.setattr(sql_base, "_MEMO_SIZE", 32)
    labels = {f"k{n:02d}": f"v{n:02d}" for n in range(33)}
    with scratch_table(engine, {"k": KEY, "label": ("VARCHAR(64)", _ExactString(64))}) as table:
        insert_raw(engine, table, *({"k": k, "label": v} for k, v in labels.items()))
        reader = _reader(engine, table, "label")
        for key, label in labels.items():
            assert reader.one_or_none({"k": key}) == (label,)
            assert reader.one_or_none({"k": key}) == (label,)
        kept = [record[0] for record in reader._memo.values()]
        assert kept == [f"v{n:02d}" for n in range(2, 33)]  # 32 full: the oldest 2 went


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_lean_reader_keeps_a_row_from_its_second_sighting_only(
    backend: str, sql_urls: dict[str, str | None], sql_engines: dict[str, Any]
) -> None:
    # a stream of distinct rows, each read once (many API keys, each used once), leaves no
    # records behind for the garbage collector to promote and sweep
    engine = get_sql_engine(backend, sql_urls, sql_engines)
    with scratch_table(engine, {"k": KEY, "label": ("VARCHAR(64)", _ExactString(64))}) as table:
        insert_raw(engine, table, *({"k": f"k{n}", "label": f"v{n}"} for n in range(50)))
        reader = _reader(engine, table, "label")
        once = [reader.one_or_none({"k": f"k{n}"}) for n in range(50)]
        assert once == [(f"v{n}",) for n in range(50)]
        assert reader._memo == {}
        assert len(reader._seen) == 50
        assert all(type(key) is int for key in reader._seen)
        second = reader.one_or_none({"k": "k7"})
        assert second == ("v7",)
        assert second is not once[7]  # built again, now kept
        assert reader.one_or_none({"k": "k7"}) is second
        assert list(reader._memo.values()) == [("v7",)]


#: A read of a table that is not there: SQLite's driver calls it an operational error.
MISSING_TABLE_REASON = {"sqlite": "unavailable", "postgresql": "backend", "mariadb": "backend"}


def test_a_read_the_database_refuses_is_a_store_error(sql_engine: sa.Engine) -> None:
    table = sa.Table(
        f"storno_no_such_{secrets.token_hex(4)}", sa.MetaData(), sa.Column("k", sa.String(64))
    )
    reader = _reader(sql_engine, table, "k")
    with pytest.raises(StoreError) as caught:
        reader.one_or_none({"k": "k"})
    assert caught.value.reason == MISSING_TABLE_REASON[_backend(sql_engine)]
    assert not isinstance(caught.value, sa.exc.SQLAlchemyError)


def test_a_forked_child_reads_on_a_connection_of_its_own(
    sql_urls: dict[str, str | None], sql_engines: dict[str, object]
) -> None:
    # A gunicorn worker forked after the master read must not share the master's socket.
    _, store, user, session = _read_once_on_postgresql(sql_urls, sql_engines)
    parent = _backend_pid(store)

    def in_the_worker() -> str:
        state = store.session_state(user_id=user, session_id=session)
        return f"{state.epoch} {_backend_pid(store)}"

    epoch, pid = in_a_forked_child(in_the_worker).split()
    assert (epoch, int(pid) != parent) == ("0", True)
    assert _backend_pid(store) == parent  # the parent's connection is still its own and alive
    assert store.session_state(user_id=user, session_id=session).epoch == 0


class _RefusedError(Exception):
    pass


@pytest.mark.spec("SRV-5")
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_direct_read_hooks_run_around_each_lean_read(
    backend: str, tmp_path: Any, sql_urls: dict[str, str | None]
) -> None:
    url = f"sqlite:///{tmp_path / 'hooks.db'}" if backend == "sqlite" else sql_urls.get(backend)
    if url is None:
        missing_service(backend, "127.0.0.1:5432")
    assert url is not None
    engine = sql_base.create_engine(url)  # its own engine: hooks cannot be taken back
    try:
        create_schema(engine)
        calls: list[tuple[str, Any]] = []
        refuse = False

        def hook(name: str) -> Any:
            def record(connection: Any) -> None:
                calls.append((name, connection))
                if refuse and name == "before 2":
                    raise _RefusedError

            return record

        for n in (1, 2):
            add_direct_read_hooks(engine, before=hook(f"before {n}"), after=hook(f"after {n}"))
        store = SqlSessionStateStore(engine)
        assert store.session_state(user_id="u-hooks", session_id="s-hooks").epoch == 0
        assert [name for name, _ in calls] == ["before 1", "before 2", "after 1", "after 2"]
        connection, _ = store._state._connections.get()
        assert all(c is connection for _, c in calls)  # the DBAPI connection the read used

        calls.clear()
        refuse = True  # the second hook refuses: its error passes on, the first is undone
        with pytest.raises(_RefusedError):
            store.session_state(user_id="u-hooks", session_id="s-hooks")
        assert [name for name, _ in calls] == ["before 1", "before 2", "after 1"]

        calls.clear()
        refuse = False  # a read the database refuses: every hook's after still runs
        table = sa.Table(
            f"storno_no_such_{secrets.token_hex(4)}", sa.MetaData(), sa.Column("k", sa.String(64))
        )
        with pytest.raises(StoreError):
            _reader(engine, table, "k").one_or_none({"k": "k"})
        assert [name for name, _ in calls] == ["before 1", "before 2", "after 1", "after 2"]
    finally:
        engine.dispose()


def test_an_engine_with_a_schema_translate_map_reads_its_own_schema(
    sql_urls: dict[str, str | None], sql_engines: dict[str, object]
) -> None:
    # The hot reads are compiled once, untranslated: on such an engine they would read the
    # tables of the default schema (another deployment's, here), so they take the ordinary
    # read, which applies the map.
    base = get_sql_engine("postgresql", sql_urls, sql_engines)
    assert isinstance(base, sa.Engine)
    schema = f"storno_alt_{secrets.token_hex(4)}"
    with base.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        engine = base.execution_options(schema_translate_map={None: schema})
        create_schema(engine)
        user, session = f"user-{secrets.token_hex(4)}", secrets.token_hex(16)
        SqlSessionStateStore(base).bump_epoch(user)  # the default schema: epoch 1
        SqlSessionStateStore(base).bump_epoch(user)  # ... and 2
        translated = SqlSessionStateStore(engine)
        assert translated.session_state(user_id=user, session_id=session).epoch == 0
        translated.bump_epoch(user)
        translated.revoke_session(
            session, now=datetime.now(UTC), until=datetime(2100, 1, 1, tzinfo=UTC)
        )
        state = translated.session_state(user_id=user, session_id=session)
        assert (state.epoch, state.revoked) == (1, True)
        assert SqlSessionStateStore(base).session_state(user_id=user, session_id=session) == (
            SessionState(epoch=2, revoked=False)
        )
    finally:
        with base.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")


def test_exact_text_is_bound_as_it_is_except_on_mariadb(sql_engine: sa.Engine) -> None:
    # No call per bound value where it would return the value unchanged (issue 18: eight of
    # them per GET /me); MariaDB/MySQL get the UTF-8 bytes their VARBINARY columns hold.
    dialect = sql_engine.dialect
    process = _ExactString(64).bind_processor(dialect)
    if dialect.name in ("mysql", "mariadb"):
        assert process is not None
        assert process("Zoë") == "Zoë".encode()
        assert process(None) is None
    else:
        assert process is None
    exact = ("VARCHAR(64)", _ExactString(64))
    with scratch_table(sql_engine, {"k": exact, "label": exact}) as table:
        insert_raw(sql_engine, table, {"k": "key-1", "label": "found"})
        assert _reader(sql_engine, table, "label").one_or_none({"k": "key-1"}) == ("found",)
        assert _reader(sql_engine, table, "label").one_or_none({"k": "key-2"}) is None
        with sql_engine.connect() as conn:
            found = conn.execute(sa.select(table.c.label).where(table.c.k == "key-1")).scalar()
        assert found == "found"


class _Upper(sa.types.TypeDecorator[str]):
    """A key type whose bound value is converted (upper case): what a lean read must apply."""

    impl = sa.String(64)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: sa.Dialect) -> str | None:
        return None if value is None else value.upper()


def test_a_lean_read_applies_the_bind_processor_of_a_key_that_has_one(
    sql_engine: sa.Engine,
) -> None:
    with scratch_table(sql_engine, {"k": ("VARCHAR(64)", _Upper()), "label": KEY}) as table:
        insert_raw(sql_engine, table, {"k": "KEY-1", "label": "found"})
        assert _reader(sql_engine, table, "label").one_or_none({"k": "key-1"}) == ("found",)
