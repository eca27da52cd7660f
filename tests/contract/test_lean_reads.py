"""The stores' lean reads (one ``SELECT`` on a kept autocommit connection, issue 18): a kept
PostgreSQL connection that the server dropped is replaced and the read sent again, once, as the
pool's pre-ping would have done; a disposed engine's connection is not used again."""

from __future__ import annotations

import secrets

import pytest
import sqlalchemy as sa

from storno_security.stores.sql import SqlSessionStateStore
from tests.conftest import get_sql_engine


def _backend_pid(store: SqlSessionStateStore) -> int:
    connection, _ = store._state._connections.get()
    return int(connection.info.backend_pid)


def test_a_dropped_postgresql_connection_is_replaced(
    sql_urls: dict[str, str | None], sql_engines: dict[str, object]
) -> None:
    engine = get_sql_engine("postgresql", sql_urls, sql_engines)
    assert isinstance(engine, sa.Engine)
    store = SqlSessionStateStore(engine)
    user, session = f"user-{secrets.token_hex(4)}", secrets.token_hex(16)
    assert store.session_state(user_id=user, session_id=session).epoch == 0
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
