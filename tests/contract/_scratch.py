"""A table of a test's own, made with raw DDL in the run's database: the column types the
database holds may differ from those the code reads it as, as after a schema drift or a hand
edit (a time kept as text, a number where an exact string belongs)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa


@contextlib.contextmanager
def scratch_table(engine: sa.Engine, columns: dict[str, tuple[str, Any]]) -> Iterator[sa.Table]:
    """A new table ``column -> (SQL type in the database, type the code reads it as)``, dropped
    at the end; its columns are all nullable and it has no key, so rows may repeat."""
    name = f"storno_scratch_{secrets.token_hex(4)}"
    ddl = ", ".join(f"{column} {sql_type}" for column, (sql_type, _) in columns.items())
    table = sa.Table(
        name, sa.MetaData(), *(sa.Column(c, read_as) for c, (_, read_as) in columns.items())
    )
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {name} ({ddl})")
    try:
        yield table
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE {name}")


def insert_raw(engine: sa.Engine, table: sa.Table, *rows: dict[str, Any]) -> None:
    """Insert ``rows`` as they are, bypassing the code's column types."""
    columns = ", ".join(rows[0])
    marks = ", ".join(f":{c}" for c in rows[0])
    statement = sa.text(f"INSERT INTO {table.name} ({columns}) VALUES ({marks})")
    with engine.begin() as conn:
        conn.execute(statement, list(rows))
