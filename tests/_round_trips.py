"""Count what a request costs the database, at the driver, so nothing escapes the count.

Two counts of the same window:

* ``statements``: SQLAlchemy's view (``before_cursor_execute`` plus the transaction events
  ``begin``/``commit``/``rollback`` of the engine), what the issue asked to count;
* ``round_trips``: the driver's truth. On SQLite every statement SQLite itself runs (pysqlite's
  trace callback: the ``SELECT``, and any ``BEGIN``/``COMMIT`` actually sent, including those
  of a connection used outside SQLAlchemy's events such as the stores' lean readers). On
  PostgreSQL every answer the server ends with ``ReadyForQuery`` (libpq's protocol trace): a
  ``BEGIN``, a ``SELECT``, a ``COMMIT`` and the pool's pre-ping each count one.

Attach before any connection is opened (right after ``build_server``): the hooks are set on
each new DBAPI connection.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa


class RoundTrips:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._active = False
        self.sql: list[str] = []  # what the driver ran (SQLite) or sent (PostgreSQL)
        self.events: list[str] = []  # SQLAlchemy's events
        self._traces: list[Path] = []
        self._dir = tempfile.TemporaryDirectory()
        self._dialect = engine.dialect.name
        self._listeners: list[tuple[str, Any]] = [
            ("connect", self._on_connect),
            ("before_cursor_execute", self._on_execute),
            *((name, self._event(name.upper())) for name in ("begin", "commit", "rollback")),
        ]
        for name, listener in self._listeners:
            sa.event.listen(engine, name, listener)
        engine.dispose()  # connections opened before this have no hook

    def _on_connect(self, dbapi_connection: Any, record: Any) -> None:
        if self._dialect == "sqlite":
            dbapi_connection.set_trace_callback(self._on_trace)
        elif self._dialect == "postgresql":
            from psycopg import pq

            path = Path(self._dir.name) / f"{len(self._traces)}.trace"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._traces.append(path)
            dbapi_connection.pgconn.trace(fd)
            dbapi_connection.pgconn.set_trace_flags(
                pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE
            )
        else:
            raise NotImplementedError(self._dialect)

    def _on_trace(self, statement: str) -> None:
        if self._active:
            with self._lock:
                self.sql.append(statement)

    def _on_execute(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self._active:
            with self._lock:
                self.events.append(statement.split(None, 1)[0].upper())

    def _event(self, name: str) -> Any:
        def record(*args: Any) -> None:
            if self._active:
                with self._lock:
                    self.events.append(name)

        return record

    def _pg_offsets(self) -> list[int]:
        return [path.stat().st_size for path in self._traces]

    @contextlib.contextmanager
    def window(self) -> Iterator[None]:
        """Count what runs inside the block (from this thread or any other)."""
        self.sql.clear()
        self.events.clear()
        before = self._pg_offsets()
        self._active = True
        try:
            yield
        finally:
            self._active = False
            if self._dialect == "postgresql":
                self._collect_pg(before)

    def _collect_pg(self, before: list[int]) -> None:
        # Each statement is a Query, or Parse (omitted once psycopg has prepared it) + Bind +
        # Execute + Sync; each answer ends with ReadyForQuery.
        for index, path in enumerate(self._traces):
            data = path.read_bytes()[before[index] if index < len(before) else 0 :]
            parsed = prepared = None
            for line in data.decode("utf-8", "replace").splitlines():
                parts = line.split("\t")
                if len(parts) < 3:
                    continue
                direction, kind, rest = parts[0], parts[2], "\t".join(parts[3:]).strip()
                if direction == "F" and kind == "Query":
                    self.sql.append(rest.strip('"'))
                elif direction == "F" and kind == "Parse":
                    parsed = rest.split('" "', 1)[-1].lstrip('"')
                elif direction == "F" and kind == "Bind":
                    prepared = rest.split('" "', 1)[-1].split('"', 1)[0]
                elif direction == "F" and kind == "Sync":
                    self.sql.append(parsed or f"<prepared {prepared}>")
                    parsed = prepared = None
                elif direction == "B" and kind == "ReadyForQuery":
                    self.sql.append("<ReadyForQuery>")

    @property
    def statements(self) -> list[str]:
        """What the driver sent, but transaction control and the pool's pings."""
        return [
            s
            for s in self.sql
            if s not in ("<ReadyForQuery>", ";")
            and not s.upper().startswith(("BEGIN", "COMMIT", "ROLLBACK"))
        ]

    @property
    def round_trips(self) -> int:
        if self._dialect == "postgresql":
            return sum(1 for s in self.sql if s == "<ReadyForQuery>")
        return len(self.sql)

    def close(self) -> None:
        for name, listener in self._listeners:
            sa.event.remove(self._engine, name, listener)
        self._engine.dispose()  # the traced connections (libpq keeps writing to their files)
        self._dir.cleanup()
