"""Deadlines for a database: connect, statement and lock timeouts and pool limits, written in
each dialect's own terms, so that a slow or hung database makes a store call fail with
``StoreUnavailableError`` instead of holding a thread for ever (SRV-5)."""

from __future__ import annotations

import math
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy import event

from storno_security.stores.sql._base import sqlite_writers

__all__ = ["DatabaseTimeouts", "apply_sqlite_timeouts", "timeout_options"]


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0 or math.isinf(value):
        raise ValueError(f"{attribute.name} must be a positive number of seconds, got {value}")


@attrs.frozen(kw_only=True)
class DatabaseTimeouts:
    """How long a database may take, in seconds, and how many connections a process holds.

    Attributes:
        connect: to open a connection (PostgreSQL's ``connect_timeout`` rounds up to whole
            seconds, at least 2).
        statement: one statement (PostgreSQL ``statement_timeout``; MariaDB/MySQL: the client's
            socket read and write timeouts, so a silent server is noticed by the client too).
        lock: to wait for a row or table lock (PostgreSQL ``lock_timeout``, InnoDB's
            ``innodb_lock_wait_timeout`` in whole seconds, SQLite's busy timeout).
        pool_size: connections kept open per process.
        max_overflow: extra connections opened under load, closed after use.
        pool_timeout: to wait for a free connection when all are in use.
    """

    connect: float = attrs.field(default=5.0, validator=_positive)
    statement: float = attrs.field(default=10.0, validator=_positive)
    lock: float = attrs.field(default=5.0, validator=_positive)
    pool_size: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    max_overflow: int = attrs.field(default=5, validator=attrs.validators.ge(0))
    pool_timeout: float = attrs.field(default=5.0, validator=_positive)


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def timeout_options(url: str, timeouts: DatabaseTimeouts) -> dict[str, Any]:
    """Keyword arguments for :func:`~storno_security.stores.sql.create_engine` that apply
    ``timeouts`` on ``url``'s dialect (for SQLite also call :func:`apply_sqlite_timeouts`).

    Raises:
        ValueError: the URL is malformed.
    """
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise ValueError("malformed database URL") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        return {"connect_args": {"timeout": timeouts.lock}}  # one connection per thread
    options: dict[str, Any] = {
        "pool_size": timeouts.pool_size,
        "max_overflow": timeouts.max_overflow,
        "pool_timeout": timeouts.pool_timeout,
    }
    if backend == "postgresql":
        options["connect_args"] = {
            "connect_timeout": max(2, math.ceil(timeouts.connect)),
            "options": f"-c statement_timeout={_ms(timeouts.statement)} "
            f"-c lock_timeout={_ms(timeouts.lock)}",
        }
    elif backend in ("mysql", "mariadb"):
        options["connect_args"] = {
            "connect_timeout": timeouts.connect,
            "read_timeout": timeouts.statement,
            "write_timeout": timeouts.statement,
            "init_command": "SET SESSION innodb_lock_wait_timeout = "
            f"{max(1, math.ceil(timeouts.lock))}",
        }
    elif backend == "sqlite":
        options["connect_args"] = {"timeout": timeouts.lock}
    return options


def apply_sqlite_timeouts(engine: sa.Engine, timeouts: DatabaseTimeouts) -> None:
    """Give every new SQLite connection of ``engine`` the lock timeout as its busy timeout
    (after :func:`~storno_security.stores.sql.create_engine`'s own set-up, which it replaces).
    Does nothing on another dialect."""
    if engine.dialect.name != "sqlite":
        return
    busy = _ms(timeouts.lock)
    sqlite_writers(engine).wait = timeouts.lock  # this process's writers wait as long

    def on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={busy}")
        finally:
            cursor.close()

    event.listen(engine, "connect", on_connect)
