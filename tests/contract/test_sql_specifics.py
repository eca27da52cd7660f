"""What the SQL and Redis stores promise beyond the shared contract.

Corrupt rows raise ``CorruptRecordError`` and change nothing; an unreachable backend raises
``StoreUnavailableError``, never a driver exception; the schema is created idempotently; times
round-trip as aware UTC with microseconds; ids compare exactly (MariaDB's default collations
ignore case and trailing spaces); the hot path is one round trip.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import secrets
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa

from storno_security.errors import CorruptRecordError, StoreError, StoreUnavailableError
from storno_security.stores import sql as sql_store
from storno_security.stores.redis import RedisSessionStateStore
from storno_security.stores.sql import (
    SqlRefreshFamilyStore,
    SqlSessionStateStore,
    create_engine,
    create_schema,
)
from storno_security.tokens.storage import RefreshFamily, RotationOutcome
from tests._concurrency import at_once
from tests.conftest import REDIS_URL, missing_service
from tests.contract.conftest import unreachable_databases

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TABLES = {
    "storno_refresh_families",
    "storno_refresh_tokens",
    "storno_records",
    "storno_record_locks",
    "storno_schema_versions",
}


def new_hash() -> str:
    return hashlib.sha256(secrets.token_bytes(32)).hexdigest()


def new_family(user_id: str | None = None, **times: datetime) -> RefreshFamily:
    return RefreshFamily(
        family_id=secrets.token_hex(16),
        user_id=user_id or f"user-{secrets.token_hex(6)}",
        created_at=times.get("created_at", NOW),
        expires_at=times.get("expires_at", NOW + timedelta(days=30)),
    )


def backend_of(engine: sa.Engine) -> str:
    return "mariadb" if engine.dialect.name in ("mysql", "mariadb") else engine.dialect.name


@contextlib.contextmanager
def raw_connection(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A plain connection to the store's database, without foreign-key checks, in a transaction.

    It does not come from the store's pool, so the settings changed here die with it.
    """
    plain = sa.create_engine(engine.url, poolclass=sa.pool.NullPool)
    try:
        with plain.begin() as conn:
            backend = backend_of(engine)
            if backend == "postgresql":
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            elif backend == "mariadb":
                conn.exec_driver_sql("SET SESSION foreign_key_checks = 0")
                conn.exec_driver_sql("SET SESSION sql_mode = ''")
            # SQLite: a plain pysqlite connection does not enforce foreign keys
            yield conn
    finally:
        plain.dispose()


def used_at_of(engine: sa.Engine, token_hash: str) -> Any:
    with raw_connection(engine) as conn:
        return conn.execute(
            sa.text("SELECT used_at FROM storno_refresh_tokens WHERE token_hash = :h"),
            {"h": token_hash},
        ).scalar_one()


def marker_until(conn: sa.Connection, session_id: str) -> Any:
    """The stored end of a revoked-session marker (a record of namespace ``revoked``)."""
    table = sql_store.records
    return conn.execute(
        sa.select(table.c.expires_at).where(
            table.c.namespace == "revoked", table.c.record_key == session_id
        )
    ).scalar_one()


# --- schema and engine -----------------------------------------------------------------------


def test_create_schema_is_idempotent(sql_engine: sa.Engine) -> None:
    create_schema(sql_engine)
    create_schema(sql_engine)
    assert set(sa.inspect(sql_engine).get_table_names()) >= TABLES


def test_schema_version_is_recorded(sql_engine: sa.Engine) -> None:
    from storno_security.stores.sql import SCHEMA_VERSION, schema_version

    assert schema_version(sql_engine) == SCHEMA_VERSION == 2


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    from storno_security.stores.sql import schema_version, schema_versions

    engine = create_engine(f"sqlite:///{tmp_path / 'versions.db'}")
    try:
        assert schema_version(engine) is None
        create_schema(engine)
        with engine.begin() as conn:
            conn.execute(sa.update(schema_versions).values(version=3))
        with pytest.raises(StoreError) as info:
            create_schema(engine)
        assert info.value.reason == "schema_version"
        assert schema_version(engine) == 3
    finally:
        engine.dispose()


def test_sqlite_engine_settings(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'settings.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    finally:
        engine.dispose()


def test_engine_kwargs_pass_through() -> None:
    # No connection is made: only the engine's configuration is looked at.
    url = "postgresql+psycopg://postgres@127.0.0.1:1/x"
    default = create_engine(url)
    custom = create_engine(url, pool_size=3, max_overflow=1, pool_pre_ping=False)
    try:
        assert default.pool._pre_ping is True  # type: ignore[attr-defined]
        assert custom.pool._pre_ping is False  # type: ignore[attr-defined]
        assert custom.pool.size() == 3  # type: ignore[attr-defined]
    finally:
        default.dispose()
        custom.dispose()


def test_engine_configuration_errors_are_not_driver_errors() -> None:
    for url in ("hunter2", "postgresql://user:hunter2@host:notaport/x"):
        with pytest.raises(ValueError, match="malformed") as caught:
            create_engine(url)
        assert "hunter2" not in repr(caught.value)
        assert caught.value.__cause__ is None  # a parser message may quote the URL
    with pytest.raises(StoreError) as missing:
        create_engine("nosuchdialect://x/y")
    assert missing.value.reason == "config"


# --- times -----------------------------------------------------------------------------------


def test_times_round_trip_as_aware_utc_with_microseconds(sql_engine: sa.Engine) -> None:
    store = SqlRefreshFamilyStore(sql_engine)
    created = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    # given in +02:00, stored and returned in UTC
    expires = datetime(2026, 3, 31, 14, 30, 15, 654321, tzinfo=timezone(timedelta(hours=2)))
    family = new_family(created_at=created, expires_at=expires)
    first = new_hash()
    store.create_family(family, token_hash=first)
    result = store.rotate(presented_hash=first, new_hash=new_hash(), now=NOW)
    assert result.outcome is RotationOutcome.ROTATED
    assert result.family is not None
    for got, want in (
        (result.family.created_at, created),
        (result.family.expires_at, expires),
    ):
        assert got == want
        assert got.tzinfo is UTC
        assert got.microsecond == want.microsecond
    assert result.family.expires_at.hour == 12

    # the stored value is naive UTC, to the microsecond
    with raw_connection(sql_engine) as conn:
        table = sql_store.refresh_families
        stored = conn.execute(
            sa.select(table.c.expires_at).where(table.c.family_id == family.family_id)
        ).scalar_one()
    assert stored == datetime(2026, 3, 31, 12, 30, 15, 654321, tzinfo=UTC)


def test_revocation_marker_keeps_microseconds(sql_engine: sa.Engine) -> None:
    store = SqlSessionStateStore(sql_engine)
    sid = secrets.token_hex(16)
    until = NOW + timedelta(hours=1, microseconds=1)
    store.revoke_session(sid, now=NOW, until=until)
    store.revoke_session(sid, now=NOW, until=until - timedelta(microseconds=1))  # earlier: kept
    with raw_connection(sql_engine) as conn:
        stored = marker_until(conn, sid)
    assert stored == until
    assert stored.tzinfo is UTC
    # one microsecond past "until" the marker may be purged, not at "until" itself
    store.purge_expired(now=until)
    assert store.session_state(user_id="u", session_id=sid).revoked is True
    store.purge_expired(now=until + timedelta(microseconds=1))
    assert store.session_state(user_id="u", session_id=sid).revoked is False


@pytest.mark.spec("REF-1")
def test_expiry_is_exact_to_the_microsecond(sql_engine: sa.Engine) -> None:
    store = SqlRefreshFamilyStore(sql_engine)
    expires = NOW + timedelta(days=1, microseconds=500)
    family = new_family(expires_at=expires)
    first = new_hash()
    store.create_family(family, token_hash=first)
    at_end = store.rotate(presented_hash=first, new_hash=new_hash(), now=expires)
    assert at_end.outcome is RotationOutcome.EXPIRED
    just_before = expires - timedelta(microseconds=1)
    result = store.rotate(presented_hash=first, new_hash=new_hash(), now=just_before)
    assert result.outcome is RotationOutcome.ROTATED


def test_naive_times_are_refused_before_the_database(sql_engine: sa.Engine) -> None:
    store = SqlRefreshFamilyStore(sql_engine)
    naive = datetime(2026, 3, 1, 12, 0)  # naive on purpose
    with pytest.raises(ValueError, match="naive"):
        store.create_family(new_family(created_at=naive), token_hash=new_hash())
    with pytest.raises(ValueError, match="naive"):
        store.rotate(presented_hash=new_hash(), new_hash=new_hash(), now=naive)
    with pytest.raises(ValueError, match="naive"):
        SqlSessionStateStore(sql_engine).revoke_session("sid", now=NOW, until=naive)


def test_overlong_ids_are_refused_not_truncated(sql_engine: sa.Engine) -> None:
    store = SqlRefreshFamilyStore(sql_engine)
    with pytest.raises(ValueError, match="longer"):
        store.create_family(new_family(), token_hash=new_hash() + "0")
    with pytest.raises(ValueError, match="longer"):
        store.create_family(new_family(user_id="u" * 256), token_hash=new_hash())
    with pytest.raises(ValueError, match="longer"):
        SqlSessionStateStore(sql_engine).bump_epoch("u" * 256)


# --- exact comparison of ids -----------------------------------------------------------------


def test_ids_and_hashes_compare_exactly(sql_engine: sa.Engine) -> None:
    store = SqlRefreshFamilyStore(sql_engine)
    user = f"Alice-{secrets.token_hex(4)}"
    family = new_family(user)
    first = new_hash()
    store.create_family(family, token_hash=first)
    for lookalike in (user.lower(), user.upper(), user + " "):
        result = store.rotate(
            presented_hash=first, new_hash=new_hash(), now=NOW, expected_user_id=lookalike
        )
        assert result.outcome is RotationOutcome.WRONG_USER
        assert store.revoke_by_token(first, now=NOW, expected_user_id=lookalike) is None
        assert store.revoke_user_families(lookalike, now=NOW) == []
    for lookalike in (first.upper(), first + " "):
        result = store.rotate(presented_hash=lookalike, new_hash=new_hash(), now=NOW)
        assert result.outcome is RotationOutcome.UNKNOWN
    result = store.rotate(presented_hash=first, new_hash=new_hash(), now=NOW, expected_user_id=user)
    assert result.outcome is RotationOutcome.ROTATED

    state = SqlSessionStateStore(sql_engine)
    sid = f"Sid-{secrets.token_hex(8)}"
    state.bump_epoch(user)
    state.revoke_session(sid, now=NOW, until=NOW + timedelta(hours=1))
    assert state.current_epoch(user.lower()) == 0
    assert state.session_state(user_id=user + " ", session_id=sid.lower()).revoked is False
    assert state.session_state(user_id=user, session_id=sid) == state.session_state(
        user_id=user, session_id=sid
    )


def test_unicode_ids_round_trip(sql_engine: sa.Engine) -> None:
    store = SqlRefreshFamilyStore(sql_engine)
    family = new_family(f"ünïcødé-{secrets.token_hex(4)}-" + "é" * 200)
    first = new_hash()
    store.create_family(family, token_hash=first)
    result = store.rotate(
        presented_hash=first, new_hash=new_hash(), now=NOW, expected_user_id=family.user_id
    )
    assert result.family == family


# --- atomicity -------------------------------------------------------------------------------


def test_failed_create_writes_nothing(sql_engine: sa.Engine) -> None:
    store = SqlRefreshFamilyStore(sql_engine)
    shared = new_hash()
    store.create_family(new_family(), token_hash=shared)
    second = new_family()
    with pytest.raises(StoreError) as caught:
        store.create_family(second, token_hash=shared)
    assert caught.value.reason == "duplicate"
    assert not isinstance(caught.value, sa.exc.SQLAlchemyError)
    # the family row of the failed call was rolled back with its token row
    assert store.revoke_family(second.family_id, now=NOW) is False


def test_rotation_to_an_existing_hash_changes_nothing(sql_engine: sa.Engine) -> None:
    store = SqlRefreshFamilyStore(sql_engine)
    taken = new_hash()
    store.create_family(new_family(), token_hash=taken)
    family = new_family()
    first = new_hash()
    store.create_family(family, token_hash=first)
    with pytest.raises(StoreError) as caught:
        store.rotate(presented_hash=first, new_hash=taken, now=NOW)
    assert caught.value.reason == "duplicate"
    assert used_at_of(sql_engine, first) is None
    result = store.rotate(presented_hash=first, new_hash=new_hash(), now=NOW)
    assert result.outcome is RotationOutcome.ROTATED


#: Threads per race: within the default pool (5 + 10 overflow) of the shared engines.
RACERS = 10


def bump_race(store: SqlSessionStateStore) -> None:
    """``RACERS`` first bumps of a user without a row (all of them try to insert it) at once."""
    user = f"user-{secrets.token_hex(6)}"
    seen = at_once([lambda: store.bump_epoch(user)] * RACERS)
    assert sorted(seen) == list(range(1, RACERS + 1))
    assert store.current_epoch(user) == RACERS


def revoke_race(store: SqlSessionStateStore, engine: sa.Engine) -> None:
    """``RACERS`` revocations of a new session with different ``until`` at once."""
    sid = secrets.token_hex(16)
    untils = [
        NOW + timedelta(minutes=secrets.randbelow(10_000), microseconds=i) for i in range(RACERS)
    ]
    at_once([functools.partial(store.revoke_session, sid, now=NOW, until=u) for u in untils])
    with raw_connection(engine) as conn:
        stored = marker_until(conn, sid)
    assert stored == max(untils)


def test_concurrent_bumps_are_each_counted(sql_engine: sa.Engine) -> None:
    store = SqlSessionStateStore(sql_engine)
    for _ in range(3):
        bump_race(store)


def test_concurrent_revocations_keep_the_latest_until(sql_engine: sa.Engine) -> None:
    store = SqlSessionStateStore(sql_engine)
    for _ in range(3):
        revoke_race(store, sql_engine)


def test_session_state_is_one_statement(sql_engine: sa.Engine) -> None:
    from tests.contract.test_api_key_sql import _trace_connections, statements_of

    if sql_engine.dialect.name == "sqlite":
        _trace_connections(sql_engine)  # the lean read path runs below SQLAlchemy's events
    store = SqlSessionStateStore(sql_engine)
    statements = statements_of(
        sql_engine,
        lambda: store.session_state(user_id="someone", session_id=secrets.token_hex(16)),
    )
    assert len(statements) == 1, statements


# --- corrupt rows ----------------------------------------------------------------------------


def test_negative_epoch_is_corrupt(sql_engine: sa.Engine) -> None:
    store = SqlSessionStateStore(sql_engine)
    user = f"user-{secrets.token_hex(6)}"
    with raw_connection(sql_engine) as conn:
        conn.execute(
            sa.text(
                "INSERT INTO storno_records (namespace, record_key, subject, data, number,"
                " created_at) VALUES ('epoch', :u, :u, '', -5, '2026-03-01 12:00:00')"
            ),
            {"u": user},
        )
    with pytest.raises(CorruptRecordError):
        store.current_epoch(user)
    with pytest.raises(CorruptRecordError):
        store.session_state(user_id=user, session_id="sid")
    with pytest.raises(CorruptRecordError):
        store.bump_epoch(user)
    with raw_connection(sql_engine) as conn:
        epoch = conn.execute(
            sa.text(
                "SELECT number FROM storno_records WHERE namespace = 'epoch' AND record_key = :u"
            ),
            {"u": user},
        ).scalar_one()
    assert epoch == -5  # the failed bump was rolled back


def test_token_without_family_is_corrupt(sql_engine: sa.Engine) -> None:
    store = SqlRefreshFamilyStore(sql_engine)
    orphan = new_hash()
    with raw_connection(sql_engine) as conn:
        conn.execute(
            sa.text(
                "INSERT INTO storno_refresh_tokens (token_hash, family_id, used_at)"
                " VALUES (:h, :f, NULL)"
            ),
            {"h": orphan, "f": secrets.token_hex(16)},
        )
    try:
        with pytest.raises(CorruptRecordError):
            store.rotate(presented_hash=orphan, new_hash=new_hash(), now=NOW)
        with pytest.raises(CorruptRecordError):
            store.revoke_by_token(orphan, now=NOW, expected_user_id="anyone")
    finally:
        with raw_connection(sql_engine) as conn:
            conn.execute(
                sa.text("DELETE FROM storno_refresh_tokens WHERE token_hash = :h"), {"h": orphan}
            )


#: A stored time the library never writes, per backend (each is accepted by the column type).
UNREADABLE_TIME = {
    "sqlite": "not a time",
    "postgresql": "infinity",
    "mariadb": "0000-00-00 00:00:00",
}


def test_unreadable_time_is_corrupt_and_changes_nothing(sql_engine: sa.Engine) -> None:
    store = SqlRefreshFamilyStore(sql_engine)
    family_id, user, token = secrets.token_hex(16), f"user-{secrets.token_hex(6)}", new_hash()
    with raw_connection(sql_engine) as conn:
        conn.execute(
            sa.text(
                "INSERT INTO storno_refresh_families"
                " (family_id, user_id, created_at, expires_at, revoked_at)"
                " VALUES (:f, :u, '2026-03-01 12:00:00', :bad, NULL)"
            ),
            {"f": family_id, "u": user, "bad": UNREADABLE_TIME[backend_of(sql_engine)]},
        )
        conn.execute(
            sa.text(
                "INSERT INTO storno_refresh_tokens (token_hash, family_id, used_at)"
                " VALUES (:h, :f, NULL)"
            ),
            {"h": token, "f": family_id},
        )
    with pytest.raises(CorruptRecordError):
        store.rotate(presented_hash=token, new_hash=new_hash(), now=NOW)
    assert used_at_of(sql_engine, token) is None  # not consumed: the transaction rolled back
    with pytest.raises(CorruptRecordError):
        store.revoke_by_token(token, now=NOW, expected_user_id=user)


# --- unreachable backends --------------------------------------------------------------------


@unreachable_databases
def test_unreachable_database_is_unavailable(url: str, tmp_path: Path) -> None:
    engine = create_engine(url.format(tmp=tmp_path))
    families, state = SqlRefreshFamilyStore(engine), SqlSessionStateStore(engine)
    calls = [
        lambda: create_schema(engine),
        lambda: families.create_family(new_family(), token_hash=new_hash()),
        lambda: families.rotate(presented_hash=new_hash(), new_hash=new_hash(), now=NOW),
        lambda: families.revoke_family("f", now=NOW),
        lambda: state.session_state(user_id="u", session_id="s"),
        lambda: state.bump_epoch("u"),
        lambda: state.revoke_session("s", now=NOW, until=NOW + timedelta(hours=1)),
    ]
    try:
        for call in calls:
            with pytest.raises(StoreUnavailableError) as caught:
                call()
            assert not isinstance(caught.value, sa.exc.SQLAlchemyError)
            # The lean read path (SQLite, PostgreSQL) runs on the driver: its own error is the
            # cause there.
            driver_error = engine.dialect.loaded_dbapi.Error
            assert isinstance(
                caught.value.__cause__, sa.exc.SQLAlchemyError | sqlite3.Error | driver_error
            )
    finally:
        engine.dispose()


def test_unreachable_redis_is_unavailable() -> None:
    client = redis.Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=1)
    store = RedisSessionStateStore(client)
    calls = [
        lambda: store.session_state(user_id="u", session_id="s"),
        lambda: store.current_epoch("u"),
        lambda: store.bump_epoch("u"),
        lambda: store.revoke_session("s", now=NOW, until=NOW + timedelta(hours=1)),
    ]
    try:
        for call in calls:
            with pytest.raises(StoreUnavailableError) as caught:
                call()
            assert isinstance(caught.value.__cause__, redis.RedisError)
    finally:
        client.close()


# --- Redis -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [b"abc", b"1.5", b" 7", b"-3", b"07", b"\xff"])
def test_redis_epoch_that_is_not_a_count_is_corrupt(
    redis_client: Any, redis_prefix: str, value: bytes
) -> None:
    store = RedisSessionStateStore(redis_client, prefix=redis_prefix)
    user = f"user-{secrets.token_hex(6)}"
    redis_client.set(f"{redis_prefix}epoch:{user}", value)
    with pytest.raises(CorruptRecordError):
        store.current_epoch(user)
    with pytest.raises(CorruptRecordError):
        store.session_state(user_id=user, session_id="sid")
    if value in (b"abc", b"1.5", b"\xff"):  # INCR itself refuses these
        with pytest.raises(CorruptRecordError):
            store.bump_epoch(user)
        assert redis_client.get(f"{redis_prefix}epoch:{user}") == value


def test_redis_epoch_of_the_wrong_type_is_corrupt(redis_client: Any, redis_prefix: str) -> None:
    store = RedisSessionStateStore(redis_client, prefix=redis_prefix)
    user = f"user-{secrets.token_hex(6)}"
    redis_client.hset(f"{redis_prefix}epoch:{user}", "epoch", "1")
    with pytest.raises(CorruptRecordError):
        store.current_epoch(user)
    with pytest.raises(CorruptRecordError):
        store.bump_epoch(user)


def test_redis_marker_ttl_only_grows(redis_client: Any, redis_prefix: str) -> None:
    store = RedisSessionStateStore(redis_client, prefix=redis_prefix)
    sid = secrets.token_hex(16)
    key = f"{redis_prefix}revoked:{sid}"
    hour = 3_600_000
    store.revoke_session(sid, now=NOW, until=NOW + timedelta(hours=1))
    assert hour - 10_000 < redis_client.pttl(key) <= hour
    store.revoke_session(sid, now=NOW, until=NOW + timedelta(minutes=1))
    assert redis_client.pttl(key) > hour - 10_000  # not shortened
    store.revoke_session(sid, now=NOW, until=NOW + timedelta(hours=2))
    assert redis_client.pttl(key) > hour  # lengthened
    # the TTL is "until - now" on the caller's clock, whatever the Redis host's clock says
    far_past = datetime(2001, 1, 1, tzinfo=UTC)
    other = secrets.token_hex(16)
    store.revoke_session(other, now=far_past, until=far_past + timedelta(hours=1))
    assert hour - 10_000 < redis_client.pttl(f"{redis_prefix}revoked:{other}") <= hour


def test_redis_marker_already_over_is_not_written(redis_client: Any, redis_prefix: str) -> None:
    store = RedisSessionStateStore(redis_client, prefix=redis_prefix)
    for until in (NOW, NOW - timedelta(seconds=1)):
        sid = secrets.token_hex(16)
        store.revoke_session(sid, now=NOW, until=until)
        assert redis_client.exists(f"{redis_prefix}revoked:{sid}") == 0
    sid = secrets.token_hex(16)
    store.revoke_session(sid, now=NOW, until=NOW + timedelta(microseconds=1))  # rounds up
    assert redis_client.pttl(f"{redis_prefix}revoked:{sid}") in (-2, 0, 1)


def test_redis_session_state_is_one_command(
    redis_client: Any, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RedisSessionStateStore(redis_client, prefix=redis_prefix)
    commands: list[Any] = []
    real = redis_client.execute_command

    def counting(*args: Any, **kwargs: Any) -> Any:
        commands.append(args[0])
        return real(*args, **kwargs)

    store.session_state(user_id="u", session_id="warm-up")  # loads the script once
    monkeypatch.setattr(redis_client, "execute_command", counting)
    state = store.session_state(user_id="u", session_id=secrets.token_hex(16))
    assert commands == ["EVALSHA"]
    assert state.epoch == 0
    assert state.revoked is False


def test_redis_with_decoded_responses(redis_prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        missing_service("redis", type(exc).__name__)
    try:
        store = RedisSessionStateStore(client, prefix=redis_prefix)
        user, sid = f"user-{secrets.token_hex(6)}", secrets.token_hex(16)
        assert store.bump_epoch(user) == 1
        store.revoke_session(sid, now=NOW, until=NOW + timedelta(minutes=5))
        state = store.session_state(user_id=user, session_id=sid)
        assert (state.epoch, state.revoked) == (1, True)
        assert store.current_epoch(user) == 1
    finally:
        client.close()


# --- read_transaction ------------------------------------------------------------------------


def test_read_transaction_sees_one_snapshot_and_never_blocks_a_writer(
    sql_engine: sa.Engine,
) -> None:
    state = SqlSessionStateStore(sql_engine)
    user = f"user-{secrets.token_hex(6)}"
    query = sa.text(
        "SELECT number FROM storno_records WHERE namespace = 'epoch' AND record_key = :u"
    )
    state.bump_epoch(user)
    with sql_store.read_transaction(sql_engine) as conn:
        before = conn.execute(query, {"u": user}).scalar_one()
        # A writer in another connection commits at once: the reader holds no write lock
        # (a BEGIN IMMEDIATE reader would make it wait out the busy timeout on SQLite).
        assert state.bump_epoch(user) == before + 1
        if sql_engine.dialect.name == "sqlite":
            # One snapshot for the whole block on SQLite (WAL, deferred BEGIN).
            assert conn.execute(query, {"u": user}).scalar_one() == before
    assert state.current_epoch(user) == before + 1


def test_read_transaction_translates_driver_errors(sql_engine: sa.Engine) -> None:
    with (
        pytest.raises(StoreError) as caught,
        sql_store.read_transaction(sql_engine) as conn,
    ):
        conn.execute(sa.text("SELECT * FROM no_such_table_here"))
    assert not isinstance(caught.value, sa.exc.SQLAlchemyError)


@pytest.mark.parametrize("package", ["memory", "sql", "redis"])
def test_every_exported_store_name_exists(package: str) -> None:
    """``from storno_security.stores.<package> import *`` works: no stale name in ``__all__``
    (the version-1 tables were once still listed after they were dropped)."""
    import importlib

    module = importlib.import_module(f"storno_security.stores.{package}")
    assert [name for name in module.__all__ if not hasattr(module, name)] == []


# --- refresh families: rows the store never writes -------------------------------------------


def _sqlite_engine(tmp_path: Path) -> sa.Engine:
    engine = create_engine(f"sqlite:///{tmp_path / 'tokens.db'}")
    create_schema(engine)
    return engine


def test_a_family_time_sql_and_python_read_differently_is_inconsistent(tmp_path: Path) -> None:
    """An end stored with an offset (never by the store): SQLite compares the text (11:00 is
    before 12:00, so the family looks expired to the claim) while it reads as 16:00 UTC (live):
    the store refuses to guess."""
    engine = _sqlite_engine(tmp_path)
    try:
        store = SqlRefreshFamilyStore(engine)
        family, token = new_family(), new_hash()
        store.create_family(family, token_hash=token)
        with engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE storno_refresh_families SET expires_at = :e WHERE family_id = :f"),
                {"e": "2026-03-01 11:00:00-05:00", "f": family.family_id},
            )
        with pytest.raises(CorruptRecordError) as caught:
            store.rotate(presented_hash=token, new_hash=new_hash(), now=NOW)
        assert caught.value.reason == "inconsistent"
        assert used_at_of(engine, token) is None
    finally:
        engine.dispose()


def test_a_token_hash_stored_twice_is_corrupt(tmp_path: Path) -> None:
    """A token table that lost its primary key (copied by ``CREATE TABLE ... AS``)."""
    engine = _sqlite_engine(tmp_path)
    try:
        store = SqlRefreshFamilyStore(engine)
        family, token = new_family(), new_hash()
        store.create_family(family, token_hash=token)
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE storno_refresh_tokens RENAME TO old_tokens")
            conn.exec_driver_sql("CREATE TABLE storno_refresh_tokens AS SELECT * FROM old_tokens")
            conn.exec_driver_sql("INSERT INTO storno_refresh_tokens SELECT * FROM old_tokens")
        with pytest.raises(CorruptRecordError) as caught:
            store.rotate(presented_hash=token, new_hash=new_hash(), now=NOW)
        assert caught.value.reason == "duplicate_row"
        with engine.connect() as conn:  # neither copy was claimed: rolled back
            used = conn.exec_driver_sql("SELECT used_at FROM storno_refresh_tokens").all()
        assert used == [(None,), (None,)]
    finally:
        engine.dispose()


def test_an_epoch_that_is_not_a_number_is_corrupt(tmp_path: Path) -> None:
    engine = _sqlite_engine(tmp_path)  # a SQLite column keeps the text it is given
    try:
        store = SqlSessionStateStore(engine)
        store.bump_epoch("alice")
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "UPDATE storno_records SET number = 'one' WHERE namespace = 'epoch'"
            )
        with pytest.raises(CorruptRecordError) as caught:
            store.session_state(user_id="alice", session_id="s")
        assert caught.value.reason == "bad_epoch"
    finally:
        engine.dispose()


def test_only_a_refresh_family_is_created(sql_engine: sa.Engine) -> None:
    with pytest.raises(TypeError, match="RefreshFamily"):
        SqlRefreshFamilyStore(sql_engine).create_family(object(), token_hash=new_hash())  # type: ignore[arg-type]


@pytest.mark.parametrize("user_id", ["", "a\x00b", "\ud800"])
def test_a_user_id_no_column_holds_has_no_live_families(
    sql_engine: sa.Engine, user_id: str
) -> None:
    assert SqlRefreshFamilyStore(sql_engine).live_families(user_id, now=NOW) == []
