"""SQLAlchemy asyncio engines for the async stores: the same engine set-up and the same error
translation as the synchronous stores (:mod:`storno_security.stores.sql`), on an async driver.

Private: use :func:`storno_security.aio.sql.create_async_engine`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.ext.asyncio import create_async_engine as _sa_create_async_engine

from storno_security.errors import CorruptRecordError, StoreError, StoreUnavailableError

# The synchronous engine's set-up and error translation, reused so both engines behave alike.
from storno_security.stores.sql._base import (
    _MYSQL_DIALECTS,
    _READ_ONLY,
    _sqlite_begin,
    _sqlite_connect,
    _translate_errors,
)

#: The async driver chosen for each backend when a URL names a synchronous one (or none).
ASYNC_DRIVERS: Final = {
    "sqlite": "aiosqlite",
    "postgresql": "psycopg",  # psycopg 3 is one driver for both modes (psycopg_async)
    # asyncmy, not aiomysql: aiomysql cannot send bytes (VARBINARY ids) with PyMySQL >= 1.2
    "mysql": "asyncmy",
    "mariadb": "asyncmy",
}
_ASYNC_CAPABLE: Final = frozenset(
    {"aiosqlite", "asyncpg", "psycopg", "psycopg_async", "aiomysql", "asyncmy"}
)


def async_url(url: str | sa.URL) -> sa.URL:
    """The URL with an async driver: ``sqlite:///x.db`` becomes ``sqlite+aiosqlite:///x.db``,
    ``mysql+pymysql://`` becomes ``mysql+asyncmy://``, ``postgresql://`` and
    ``postgresql+psycopg://`` become ``postgresql+psycopg://`` (psycopg 3's async mode). A URL
    that names an async driver (``asyncpg``, ``asyncmy``, ...) is kept.

    Raises:
        ValueError: the URL is malformed or its backend has no async driver here.
    """
    try:
        parsed = sa.make_url(url)
    except (sa_exc.ArgumentError, ValueError):
        raise ValueError("malformed database URL") from None
    backend = parsed.get_backend_name()
    if parsed.get_driver_name() in _ASYNC_CAPABLE and "+" in parsed.drivername:
        return parsed
    driver = ASYNC_DRIVERS.get(backend)
    if driver is None:
        raise ValueError(f"no async driver for the {backend} backend")
    return parsed.set(drivername=f"{backend}+{driver}")


def create_async_engine(url: str | sa.URL, **engine_kwargs: Any) -> AsyncEngine:
    """See :func:`storno_security.aio.sql.create_async_engine`."""
    parsed = async_url(url)
    kwargs: dict[str, Any] = {"hide_parameters": True}
    backend = parsed.get_backend_name()
    if backend != "sqlite":
        kwargs["pool_pre_ping"] = True
        if backend in _MYSQL_DIALECTS:
            kwargs["isolation_level"] = "READ COMMITTED"
    kwargs.update(engine_kwargs)
    try:
        engine = _sa_create_async_engine(parsed, **kwargs)
    except (sa_exc.NoSuchModuleError, ImportError) as exc:
        raise StoreError(
            "the async database driver is not installed (the 'async' extra)", reason="config"
        ) from exc
    except sa_exc.ArgumentError as exc:
        raise ValueError("an engine argument is not acceptable") from exc
    if backend == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


@contextlib.asynccontextmanager
async def transaction(
    engine: AsyncEngine, *, read_only: bool = False
) -> AsyncIterator[AsyncConnection]:
    """One transaction, as the synchronous stores' ``_transaction``: committed when the block
    ends, rolled back when it raises; ``read_only`` for one ``SELECT`` (no ``BEGIN`` on SQLite).

    Raises:
        StoreUnavailableError: the database could not be reached.
        StoreError: the database failed.
    """
    driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error  # never None: it raises
    with _translate_errors():
        try:
            async with engine.connect() as conn:
                if read_only:
                    await conn.execution_options(**{_READ_ONLY: True})
                async with conn.begin():
                    yield conn
        except driver_error as exc:  # a driver error that SQLAlchemy did not wrap
            raise StoreUnavailableError(reason="unavailable") from exc


def one_row(rows: list[Any]) -> Any | None:
    """The one row of a result, ``None`` for none; more is a corrupt record."""
    if len(rows) > 1:
        raise CorruptRecordError(reason="duplicate_row")
    return rows[0] if rows else None


async def fetch_all(conn: AsyncConnection, statement: Any, params: Any = None) -> list[Any]:
    """Every row of ``statement``; a value the column types cannot read is a corrupt record."""
    result = await conn.execute(statement, params)
    try:
        return list(result.all())
    except (ValueError, TypeError, sa_exc.DataError) as exc:
        raise CorruptRecordError(reason="unreadable") from exc
