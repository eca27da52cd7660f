"""Round trips per operation of the records primitive: exactly one on Redis (a script, or one
``HGETALL``), and the statements of one transaction on SQL, counted with SQLAlchemy's
``before_cursor_execute`` (``BEGIN IMMEDIATE`` included on SQLite). Run with ``-s`` to print
the table of figures."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from storno_security.stores.redis._records import RedisRecords
from storno_security.stores.sql._records import SqlRecords
from tests.conftest import get_sql_engine

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
NS = "test"


def _operations(records: Any) -> dict[str, Callable[[], object]]:
    k, u, s = secrets.token_hex(8), f"user-{secrets.token_hex(4)}", secrets.token_hex(8)
    records.insert(NS, s, now=NOW, expires_at=LATER, subject=u)
    return {
        "insert": lambda: records.insert(NS, k, now=NOW, expires_at=LATER, subject=u),
        "insert(keep)": lambda: records.insert(
            NS, k + "x", now=NOW, expires_at=LATER, subject=u, keep=3
        ),
        "get": lambda: records.get(NS, k, now=NOW),
        "count(create)": lambda: records.count(NS, u, now=NOW, expires_at=LATER, subject=u),
        "count": lambda: records.count(NS, u, now=NOW, create=False),
        "advance": lambda: records.advance(NS, "a" + k, 5, now=NOW, expires_at=LATER),
        "take": lambda: records.take(NS, k, now=NOW),
        "take(siblings)": lambda: records.take(NS, k + "x", now=NOW, siblings=True),
        "forget": lambda: records.forget(NS, u),
        "purge": lambda: records.purge(NS, now=NOW),
    }


def test_redis_is_one_round_trip_per_operation(
    redis_client: Any, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = RedisRecords(redis_client, prefix=redis_prefix)
    for call in _operations(records).values():  # load every script once
        call()
    commands: list[Any] = []
    real = redis_client.execute_command

    def counting(*args: Any, **kwargs: Any) -> Any:
        commands.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(redis_client, "execute_command", counting)
    counts = {}
    for name, call in _operations(records).items():
        commands.clear()
        call()
        counts[name] = len(commands)
    print("\nRedis round trips:", counts)
    assert set(counts.values()) <= {0, 1}  # purge makes none


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb"])
def test_sql_statements_per_operation(backend: str, sql_urls: Any, sql_engines: Any) -> None:
    engine = get_sql_engine(backend, sql_urls, sql_engines)
    records = SqlRecords(engine)
    seen: list[str] = []

    def trace(*args: Any) -> None:
        seen.append(args[2])

    event.listen(engine, "before_cursor_execute", trace)
    try:
        counts = {}
        for name, call in _operations(records).items():
            seen.clear()
            call()
            counts[name] = len(seen)
    finally:
        event.remove(engine, "before_cursor_execute", trace)
    print(f"\n{backend} statements:", counts)
    assert max(counts.values()) <= (6 if backend == "sqlite" else 5)  # SQLite: BEGIN too
