"""Async SQL stores over SQLAlchemy asyncio: the per-request reads of the session state and of
API keys, on the rows the synchronous stores (:mod:`storno_security.stores.sql`) write.

Needs the ``async`` extra. Drivers: ``aiosqlite`` for SQLite, psycopg 3 (its async mode: the
same driver, and the same ``postgresql+psycopg://`` URL, as the synchronous stores) for
PostgreSQL, ``asyncmy`` for MariaDB and MySQL (``aiomysql`` cannot send the ``VARBINARY`` ids
these stores use with PyMySQL 1.2 or later). ``asyncpg`` works too: name it in the URL.

The statements are the synchronous stores' own (the session state's one ``SELECT``, the key's
``SELECT`` by primary key, the conditional ``UPDATE`` of ``touch``), and so are the row checks
and the error translation: a sync writer and an async reader see one state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from storno_security.aio._sql import async_url, fetch_all, one_row, transaction
from storno_security.aio._sql import create_async_engine as _create_async_engine
from storno_security.api_keys.storage import ApiKeyRecord
from storno_security.clock import ensure_aware_utc
from storno_security.errors import CorruptRecordError
from storno_security.stores.sql import api_keys as api_keys_table
from storno_security.stores.sql._base import _check_key
from storno_security.stores.sql.api_keys import _GET, _record_of

# The synchronous store's statement and row check, so both read the same thing the same way.
from storno_security.stores.sql.tokens import (
    _SESSION_STATE,
    session_state_of,
    session_state_params,
)
from storno_security.tokens.storage import SessionState

__all__ = [
    "AsyncSqlApiKeyStore",
    "AsyncSqlSessionStateStore",
    "async_url",
    "create_async_engine",
]

_K = api_keys_table.c


def create_async_engine(url: str | sa.URL, **engine_kwargs: Any) -> AsyncEngine:
    """Make a SQLAlchemy asyncio engine for the async stores, set up as
    :func:`storno_security.stores.sql.create_engine` sets up a synchronous one.

    Args:
        url: the database URL; a synchronous one (``sqlite:///app.db``,
            ``postgresql+psycopg://...``, ``mysql+pymysql://...``) is given its async driver
            (:func:`async_url`), so the application's one URL serves both engines.
        **engine_kwargs: passed to :func:`sqlalchemy.ext.asyncio.create_async_engine`.

    Raises:
        ValueError: the URL is malformed or has no async driver, or an engine argument is not
            acceptable.
        StoreError: the async driver is not installed (``reason="config"``).
    """
    return _create_async_engine(url, **engine_kwargs)


class AsyncSqlSessionStateStore:
    """The session-state read of :class:`~storno_security.stores.sql.SqlSessionStateStore`,
    async: one ``SELECT`` of the epoch record and the revocation marker in ``storno_records``.

    Args:
        engine: from :func:`create_async_engine`, on the database of the synchronous store.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    def __repr__(self) -> str:
        return f"AsyncSqlSessionStateStore({self._engine.dialect.name})"

    async def session_state(self, *, user_id: str, session_id: str) -> SessionState:
        """See :meth:`~storno_security.aio.AsyncSessionStateStore.session_state`."""
        params = session_state_params(user_id, session_id)
        async with transaction(self._engine, read_only=True) as conn:
            row = one_row(await fetch_all(conn, _SESSION_STATE, params))
        if row is None:  # pragma: no cover - its SELECT has no FROM: always one row
            raise CorruptRecordError(reason="no_row")
        return session_state_of(row)


class AsyncSqlApiKeyStore:
    """The verification verbs of :class:`~storno_security.stores.sql.SqlApiKeyStore`, async:
    one ``SELECT`` by primary key, and ``touch`` as one conditional ``UPDATE``.

    Args:
        engine: from :func:`create_async_engine`, on the database of the synchronous store.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    def __repr__(self) -> str:
        return f"AsyncSqlApiKeyStore({self._engine.dialect.name})"

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        """See :meth:`~storno_security.aio.AsyncApiKeyStore.get`."""
        params = {"key_id": _check_key("key_id", key_id)}
        async with transaction(self._engine, read_only=True) as conn:
            row = one_row(await fetch_all(conn, _GET, params))
        return None if row is None else _record_of(row)

    async def touch(self, key_id: str, *, now: datetime, stale_before: datetime) -> bool:
        """See :meth:`~storno_security.aio.AsyncApiKeyStore.touch`.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: a time is naive.
        """
        key_id = _check_key("key_id", key_id)
        now = ensure_aware_utc(now)
        stale_before = ensure_aware_utc(stale_before)
        update = (
            sa.update(api_keys_table)
            .where(
                _K.key_id == key_id,
                sa.or_(_K.last_used_at.is_(None), _K.last_used_at <= stale_before),
            )
            .values(last_used_at=now)
        )
        async with transaction(self._engine) as conn:
            count = (await conn.execute(update)).rowcount
        if count not in (0, 1):
            raise CorruptRecordError(reason="duplicate_row")
        return count == 1
