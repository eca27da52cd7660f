"""Shared machinery of the SQL stores: engine set-up, column types, the schema registry, the
schema version, transactions and error translation. Private: import from
:mod:`storno_security.stores.sql`.

Every capability module of this package defines its tables on :data:`metadata`; the package
imports them all, so :func:`create_schema` creates every table.
"""

from __future__ import annotations

import collections
import contextlib
import json
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry, NullPool, QueuePool

from storno_security import _process
from storno_security._memo import make_room
from storno_security.clock import ensure_aware_utc
from storno_security.errors import CorruptRecordError, StoreError, StoreUnavailableError
from storno_security.stores._records import lookup

_MYSQL_DIALECTS = frozenset({"mysql", "mariadb"})
_ID_LENGTH = 64  # family ids, session ids, token hashes (SHA-256 hex is 64)
_USER_LENGTH = 255
_READ_ONLY = "storno_read_only"  # execution option: a transaction that only reads
_T = TypeVar("_T")


# --- engine ----------------------------------------------------------------------------------


def _sqlite_connect(
    dbapi_connection: DBAPIConnection, connection_record: ConnectionPoolEntry
) -> None:
    # Take transaction control away from pysqlite: the "begin" listener emits BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=30000")  # first, so that the next one may wait
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    # A writer takes the write lock at BEGIN, so two writers queue on busy_timeout instead of
    # deadlocking on a lock upgrade (which SQLite reports at once as "database is locked").
    # A read-only transaction runs one SELECT (see _transaction): no BEGIN, the statement is in
    # autocommit mode and reads one snapshot of itself.
    if not conn.get_execution_options().get(_READ_ONLY):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(url: str, **engine_kwargs: Any) -> sa.Engine:
    """Make a SQLAlchemy engine set up for the stores of this module.

    Args:
        url: a SQLAlchemy URL, e.g. ``sqlite:///storno.db``,
            ``postgresql+psycopg://user@host/db`` or ``mysql+pymysql://user@host/db``. For
            SQLite use a file: each connection to ``:memory:`` is a database of its own.
        **engine_kwargs: passed to :func:`sqlalchemy.create_engine` (``pool_size`` and so on);
            they override this function's defaults (``hide_parameters=True``;
            ``pool_pre_ping=True`` and, on MariaDB/MySQL, ``isolation_level="READ COMMITTED"``
            for servers).

    Returns:
        The engine. On SQLite every new connection gets ``journal_mode=WAL``,
        ``busy_timeout=30000`` and ``foreign_keys=ON``; the stores' transactions that write
        begin with ``BEGIN IMMEDIATE``, their single-``SELECT`` reads run in autocommit mode.

    Raises:
        ValueError: the URL is malformed, or an engine argument is not acceptable.
        StoreError: the URL names a dialect or driver that is not installed
            (``reason="config"``).
    """
    try:
        parsed = sa.make_url(url)
    except (sa_exc.ArgumentError, ValueError):
        # not chained: a parser message may quote part of the URL, which may hold a password
        raise ValueError("malformed database URL") from None
    kwargs: dict[str, Any] = {"hide_parameters": True}
    backend = parsed.get_backend_name()
    if backend != "sqlite":
        kwargs["pool_pre_ping"] = True
        if backend in _MYSQL_DIALECTS:
            kwargs["isolation_level"] = "READ COMMITTED"
    kwargs.update(engine_kwargs)
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (sa_exc.NoSuchModuleError, ImportError) as exc:
        raise StoreError(
            "the database dialect or driver is not installed", reason="config"
        ) from exc
    except sa_exc.ArgumentError as exc:
        raise ValueError("an engine argument is not acceptable") from exc
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


# --- column types ----------------------------------------------------------------------------


class _UtcDateTime(sa.types.TypeDecorator[datetime]):
    """An aware UTC ``datetime`` stored as naive UTC with microseconds."""

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in _MYSQL_DIALECTS:
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime(timezone=False))

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        return ensure_aware_utc(value).replace(tzinfo=None)

    def process_result_value(self, value: Any | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):  # e.g. a zero date that the driver left as text
            raise CorruptRecordError(reason="bad_datetime")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class _ExactString(sa.types.TypeDecorator[str]):
    """Text compared byte for byte on every backend (``VARBINARY`` on MariaDB/MySQL)."""

    impl = sa.String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in _MYSQL_DIALECTS:
            # Room for ``length`` characters of UTF-8; callers are held to ``length`` characters.
            return dialect.type_descriptor(mysql.VARBINARY(self.length * 4))
        return dialect.type_descriptor(sa.String(self.length))

    def bind_processor(self, dialect: sa.Dialect) -> Callable[[Any], Any] | None:
        if dialect.name in _MYSQL_DIALECTS:
            return super().bind_processor(dialect)
        # The value is bound as it is: the plain string type's processor (none on SQLite and
        # PostgreSQL), not a call per value that returns it unchanged.
        return sa.String(self.length).dialect_impl(dialect).bind_processor(dialect)

    def process_bind_param(self, value: str | None, dialect: sa.Dialect) -> Any:
        if value is None or dialect.name not in _MYSQL_DIALECTS:
            return value
        return value.encode("utf-8")

    def process_result_value(self, value: Any | None, dialect: sa.Dialect) -> str | None:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value).decode("utf-8")  # UnicodeDecodeError: a corrupt record
        raise CorruptRecordError(reason="bad_text")


# --- schema ----------------------------------------------------------------------------------

#: The tables of this module, all prefixed ``storno_``.
metadata = sa.MetaData()

#: The version of the schema this release writes. A release that changes the tables bumps it and
#: ships the upgrade, which :func:`create_schema` runs; it refuses a database of a newer version.
#: 2: the short-lived stores share ``storno_records`` (and ``storno_record_locks``); refresh
#: tokens name their successor (REF-5). Upgrade from 1: :mod:`._migrate`.
SCHEMA_VERSION = 2

schema_versions = sa.Table(
    "storno_schema_versions",
    metadata,
    sa.Column("component", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer(), nullable=False),
    mysql_engine="InnoDB",
)

_COMPONENT = "tokens"
_VERSION_QUERY = sa.select(schema_versions.c.version).where(
    schema_versions.c.component == _COMPONENT
)


def schema_version(engine: sa.Engine) -> int | None:
    """The recorded schema version of the token tables, or ``None`` before :func:`create_schema`.

    Raises:
        StoreUnavailableError: the database could not be reached.
        CorruptRecordError: the recorded version is not an integer.
    """
    with _translate_errors():
        if not sa.inspect(engine).has_table(schema_versions.name):
            return None
    with _transaction(engine, read_only=True) as conn:
        row = _fetch_one(conn.execute(_VERSION_QUERY))
    if row is None:
        return None
    if not isinstance(row.version, int):
        raise CorruptRecordError(reason="bad_schema_version")
    return row.version


# --- shared helpers --------------------------------------------------------------------------


@contextlib.contextmanager
def _translate_errors(*, duplicate: bool = False) -> Iterator[None]:
    """Turn SQLAlchemy and driver exceptions into the library's store errors."""
    try:
        yield
    except StoreError:
        raise
    except sa_exc.IntegrityError as exc:
        if duplicate:
            raise StoreError("the id or hash exists already", reason="duplicate") from exc
        raise StoreError("the database refused the write", reason="integrity") from exc
    except (
        sa_exc.OperationalError,
        sa_exc.InterfaceError,
        sa_exc.DisconnectionError,
        sa_exc.TimeoutError,
    ) as exc:
        raise StoreUnavailableError(reason="unavailable") from exc
    except sa_exc.SQLAlchemyError as exc:
        raise StoreError("the database failed the operation", reason="backend") from exc


@contextlib.contextmanager
def _transaction(
    engine: sa.Engine, *, read_only: bool = False, duplicate: bool = False
) -> Iterator[sa.Connection]:
    """One transaction: committed when the block ends, rolled back when it raises.

    ``read_only=True`` is for a block that runs one ``SELECT`` and nothing else: on SQLite it
    runs without ``BEGIN`` (autocommit: one statement, one snapshot), saving two round trips.
    """
    dbapi = engine.dialect.loaded_dbapi
    driver_error: type[Exception] | tuple[()] = () if dbapi is None else dbapi.Error
    writers = None if read_only or engine.dialect.name != "sqlite" else sqlite_writers(engine)
    if writers is not None and not writers.lock.acquire(timeout=writers.wait):
        raise StoreUnavailableError(reason="timeout")
    try:
        with _translate_errors(duplicate=duplicate):
            try:
                with engine.connect() as conn:
                    if read_only:
                        conn.execution_options(**{_READ_ONLY: True})
                    with conn.begin():
                        yield conn
            except driver_error as exc:  # a driver error that SQLAlchemy did not wrap
                raise StoreUnavailableError(reason="unavailable") from exc
    finally:
        if writers is not None:
            writers.lock.release()


class _FifoLock:
    """A lock handed to its waiters in the order they came (``threading.Lock`` wakes any)."""

    __slots__ = ("_locked", "_mutex", "_waiters")

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._locked = False
        self._waiters: collections.deque[threading.Event] = collections.deque()

    def acquire(self, timeout: float) -> bool:
        with self._mutex:
            if not self._locked:
                self._locked = True
                return True
            turn = threading.Event()
            self._waiters.append(turn)
        if turn.wait(timeout):
            return True
        with self._mutex:
            if turn in self._waiters:  # still queued: give up the place
                self._waiters.remove(turn)
                return False
        return True  # handed over just as the wait ended

    def release(self) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().set()  # handed over: it stays locked
            else:
                self._locked = False


class SqliteWriters:
    """The writers of one SQLite engine in this process, queued first come, first served.

    SQLite admits one writer at a time; a writer that finds the database locked sleeps and polls
    (the busy handler, in growing steps), so under many threads a few wait far longer than the
    rest. Queued here instead, the threads of a process take turns in order as soon as the
    previous writer commits; ``busy_timeout`` still orders writers of different processes. A
    write transaction must not open another on the same engine (SQLite would deadlock it too).

    Attributes:
        lock: held for the whole write transaction.
        wait: seconds to wait for it before the store answers ``StoreUnavailableError``
            (the busy timeout, 30 s unless the database timeouts say otherwise).
    """

    __slots__ = ("lock", "wait")

    def __init__(self) -> None:
        self.lock = _FifoLock()
        self.wait = 30.0


_WRITERS: weakref.WeakKeyDictionary[sa.Engine, SqliteWriters] = weakref.WeakKeyDictionary()
_WRITERS_GUARD = threading.Lock()


def sqlite_writers(engine: sa.Engine) -> SqliteWriters:
    """The writer queue of a SQLite ``engine`` (made on first use)."""
    writers = _WRITERS.get(engine)
    if writers is None:
        with _WRITERS_GUARD:
            writers = _WRITERS.setdefault(engine, SqliteWriters())
    return writers


@contextlib.contextmanager
def read_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A read-only transaction for an application sharing the engine: several ``SELECT``
    statements that see one snapshot, and take no write lock.

    On SQLite a plain (deferred) ``BEGIN`` instead of the ``BEGIN IMMEDIATE`` that
    :func:`create_engine` sets up for writers: in WAL mode readers then never wait for, nor
    block, a writer. On servers it is an ordinary transaction. Driver errors are translated as
    the stores' are.

    Raises:
        StoreUnavailableError: the database could not be reached.
        StoreError: the database failed.
    """
    dbapi = engine.dialect.loaded_dbapi
    driver_error: type[Exception] | tuple[()] = () if dbapi is None else dbapi.Error
    with _translate_errors():
        try:
            with engine.connect() as conn:
                sqlite = engine.dialect.name == "sqlite"
                if sqlite:
                    conn.execution_options(**{_READ_ONLY: True})
                with conn.begin():
                    if sqlite:
                        conn.exec_driver_sql("BEGIN")
                    yield conn
        except driver_error as exc:  # a driver error that SQLAlchemy did not wrap
            raise StoreUnavailableError(reason="unavailable") from exc


def _fetch(result: sa.CursorResult[Any]) -> Sequence[sa.Row[Any]]:
    """Fetch every row; a value that cannot be converted means a corrupt record."""
    try:
        return result.all()
    except (ValueError, TypeError, sa_exc.DataError) as exc:
        raise CorruptRecordError(reason="unreadable") from exc


def _fetch_one(result: sa.CursorResult[Any]) -> sa.Row[Any] | None:
    rows = _fetch(result)
    if len(rows) > 1:
        raise CorruptRecordError(reason="duplicate_row")
    return rows[0] if rows else None


def _check_key(name: str, value: object) -> str:
    """A lookup key: any str. One that no column can hold (see :func:`lookup`) becomes ``""``,
    which every write refuses, so it matches nothing, exactly like an unknown key, instead of
    failing the query."""
    return lookup(name, value) or ""


def _names_of(value: object) -> list[str] | None:
    """A JSON array of non-empty names read from a row, or ``None`` for ``NULL``.

    Raises:
        CorruptRecordError: anything else (``reason="bad_permissions"``).
    """
    if value is None:
        return None
    try:
        items = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        items = None
    if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
        raise CorruptRecordError(reason="bad_permissions")
    return items


def _build(kind: Callable[..., _T], reason: str, fields: Mapping[str, Any]) -> _T:
    """``kind(**fields)``, built from a row: what the record's validators refuse is a record
    the library did not write.

    Raises:
        CorruptRecordError: ``reason``.
    """
    try:
        return kind(**fields)
    except (TypeError, ValueError) as exc:
        raise CorruptRecordError(reason=reason) from exc


def _required_time(value: object) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise CorruptRecordError(reason="bad_datetime")
    return value


def _optional_time(value: object) -> datetime | None:
    return None if value is None else _required_time(value)


def _text_of(value: object, reason: str) -> str:
    """A text value read from a row: a non-empty str, else the record is corrupt."""
    if not isinstance(value, str) or not value:
        raise CorruptRecordError(reason=reason)
    return value


def _count_of(value: object, reason: str = "bad_count") -> int:
    """A count read from a row: a non-negative int (not a bool), else the record is corrupt."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CorruptRecordError(reason=reason)
    return value


def _existing_row(conn: sa.Connection, query: sa.Executable, reason: str = "no_row") -> sa.Row[Any]:
    """The one row a ``SELECT`` must find (one this transaction has just written or locked).

    Raises:
        CorruptRecordError: no row (``reason``), or more than one.
    """
    row = _fetch_one(conn.execute(query))
    if row is None:
        raise CorruptRecordError(reason=reason)
    return row


def _aware_or_none(value: datetime | None) -> datetime | None:
    """An optional time to write: ``None``, or an aware time converted to UTC."""
    return None if value is None else ensure_aware_utc(value)


def _changed_one(conn: sa.Connection, statement: sa.Executable) -> bool:
    """Run one conditional statement on at most one row (by its key) and say whether it changed
    it: the row count decides the one winner among concurrent callers.

    Raises:
        CorruptRecordError: the statement changed more than one row (``reason="duplicate_row"``).
    """
    count = conn.execute(statement).rowcount
    if count not in (0, 1):
        raise CorruptRecordError(reason="duplicate_row")
    return count == 1


def _changed_each(
    conn: sa.Connection, ids: sa.Select[Any], change: Callable[[str], sa.Executable], reason: str
) -> list[str]:
    """Run ``change(id)``, one conditional statement, for each id ``ids`` lists; so of
    concurrent callers exactly one reports each id.

    Returns:
        The ids whose statement changed their row, sorted.

    Raises:
        CorruptRecordError: an id is not a non-empty str (``reason``), or a statement changed
            more than one row.
    """
    changed = []
    for (value,) in _fetch(conn.execute(ids)):
        row_id = _text_of(value, reason)
        if _changed_one(conn, change(row_id)):
            changed.append(row_id)
    return sorted(changed)


def _upsert(dialect: str, table: sa.Table, values: dict[str, Any]) -> Any:
    """An ``INSERT`` with the dialect's ``ON CONFLICT`` (PostgreSQL, SQLite) or ``ON DUPLICATE
    KEY`` (MariaDB, MySQL) extension.

    Raises:
        StoreError: the dialect is none of these (``reason="config"``).
    """
    if dialect == "postgresql":
        return postgresql.insert(table).values(**values)
    if dialect == "sqlite":
        return sqlite.insert(table).values(**values)
    if dialect in _MYSQL_DIALECTS:
        return mysql.insert(table).values(**values)
    raise StoreError(f"no upsert for the {dialect} dialect", reason="config")


def _upsert_update(
    dialect: str,
    table: sa.Table,
    values: dict[str, Any],
    updates: Callable[[Any], list[tuple[str, Any]]],
) -> Any:
    """An upsert of ``values`` that, when the primary key exists, assigns ``updates(new)``
    instead, ``new`` being the row the statement proposes (``inserted`` on MariaDB/MySQL,
    ``excluded`` elsewhere). The assignments keep their order: MySQL applies them left to right,
    so an expression reads the columns assigned before it as already assigned.

    Raises:
        StoreError: the dialect has no upsert (``reason="config"``).
    """
    upsert = _upsert(dialect, table, values)
    if dialect in _MYSQL_DIALECTS:
        return upsert.on_duplicate_key_update(updates(upsert.inserted))
    return upsert.on_conflict_do_update(
        index_elements=list(table.primary_key.columns), set_=dict(updates(upsert.excluded))
    )


class _SqlStore:
    """What every SQL store has: its engine, a ``repr`` naming the dialect, and the single
    statement transactions they all run."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._engine.dialect.name})"

    def _insert(self, table: sa.Table, values: dict[str, Any]) -> None:
        """Insert one row in its own transaction; a duplicate key is ``reason="duplicate"``."""
        with _transaction(self._engine, duplicate=True) as conn:
            conn.execute(sa.insert(table).values(**values))

    def _delete(self, table: sa.Table, *where: Any) -> int:
        """Delete the matching rows in one statement; return how many."""
        with _transaction(self._engine) as conn:
            return conn.execute(sa.delete(table).where(*where)).rowcount

    def _change_one(self, statement: sa.Executable) -> bool:
        """:func:`_changed_one` in its own transaction."""
        with _transaction(self._engine) as conn:
            return _changed_one(conn, statement)

    def _read_one(self, query: sa.Executable, build: Callable[[Any], _T]) -> _T | None:
        """What ``build`` makes of the one row ``query`` finds, or ``None``: one ``SELECT``."""
        with _transaction(self._engine, read_only=True) as conn:
            row = _fetch_one(conn.execute(query))
        return None if row is None else build(row)

    def _read_all(self, query: sa.Executable, build: Callable[[Any], _T]) -> list[_T]:
        """What ``build`` makes of each row ``query`` finds, in order: one ``SELECT``."""
        with _transaction(self._engine, read_only=True) as conn:
            rows = _fetch(conn.execute(query))
        return [build(row) for row in rows]


# --- lean reads ------------------------------------------------------------------------------


_MEMO_SIZE = 4096


def _lean_dialect(engine: sa.Engine) -> bool:
    """Whether the lean readers serve this engine: a SQLite file with the default pool, or
    PostgreSQL through psycopg 3 (anything else reads in an ordinary transaction). Not with
    a ``schema_translate_map``: the statement compiled once names the tables untranslated, so
    it would read another schema's; the ordinary read applies the map."""
    if engine.get_execution_options().get("schema_translate_map"):
        return False
    dialect = engine.dialect
    if dialect.name == "sqlite":
        return isinstance(engine.pool, QueuePool | NullPool)
    return dialect.name == "postgresql" and dialect.driver == "psycopg"


class _LeanConnections:
    """One DBAPI connection per thread for every lean reader of an engine, in autocommit mode.

    Taken once from the engine's pool (so it has the pool's set-up: the SQLite pragmas, the
    server's connect arguments), then detached so that it holds no pool slot; dropped on a
    driver error, after a fork, and when the engine is disposed (that thread's own is closed
    at once, the others' when their thread next reads).
    """

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._local = threading.local()
        self._generation = 0
        #: ``(before, after)`` pairs run around each read (see :func:`add_direct_read_hooks`)
        self.hooks: tuple[tuple[DirectReadHook, DirectReadHook], ...] = ()
        event.listen(engine, "engine_disposed", self._disposed)

    def _disposed(self, engine: sa.Engine) -> None:
        self._generation += 1
        self.drop()

    def get(self) -> tuple[Any, bool]:
        """The thread's connection, and whether it was opened by this call.

        Raises:
            StoreUnavailableError: no connection could be opened.
            StoreError: the database failed.
        """
        local = self._local
        key = (_process.generation(), self._generation)
        old = getattr(local, "key", None)
        if old != key:  # a new thread, a forked child, a disposal
            if old is not None and old[0] == key[0]:  # disposed: close it (never a parent's)
                self.drop()
            local.connection = None
            local.key = key
        if local.connection is not None:
            return local.connection, False
        dbapi = self._engine.dialect.loaded_dbapi
        try:
            with _translate_errors():
                fairy = self._engine.raw_connection()
            fairy.detach()  # closed by drop(), never returned to the pool
            connection: Any = fairy.dbapi_connection
            if self._engine.dialect.name != "sqlite":  # SQLite's is in autocommit already
                connection.rollback()  # the pool's pre-ping may have opened a transaction
                connection.autocommit = True
        except dbapi.Error as exc:  # the pool passes connect errors on unwrapped
            raise StoreUnavailableError(reason="unavailable") from exc
        local.connection = connection
        return connection, True

    def drop(self) -> None:
        """Close the thread's connection (after an error)."""
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()


def _direct_processor(column_type: Any, dialect: sa.Dialect) -> Callable[[Any], Any] | None:
    """The result processor of a column, for a lean read: the same conversion as the type's
    own, in one call instead of a chain of them (the dialect's parse, the decorator's wrapper,
    its ``process_result_value``) for this library's two decorated types."""
    if isinstance(column_type, _UtcDateTime):
        decorated: Any = column_type.dialect_impl(dialect)
        impl = decorated.impl_instance  # the dialect's own type, which the decorator wraps
        parse = impl.result_processor(dialect, None)

        def utc(value: Any) -> datetime | None:
            if value is None:
                return None
            if parse is not None:
                value = parse(value)
            if not isinstance(value, datetime):
                raise CorruptRecordError(reason="bad_datetime")
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

        return utc
    if isinstance(column_type, _ExactString) and dialect.name not in _MYSQL_DIALECTS:
        exact = column_type.process_result_value

        def text(value: Any) -> Any:
            return value if value is None or type(value) is str else exact(value, dialect)

        return text
    processor: Callable[[Any], Any] | None = column_type.dialect_impl(dialect).result_processor(
        dialect, None
    )
    return processor


_LEAN_LOCK = threading.Lock()

#: Called with the DBAPI connection of a direct read (see :func:`add_direct_read_hooks`).
DirectReadHook = Callable[[Any], None]


def add_direct_read_hooks(
    engine: sa.Engine, *, before: DirectReadHook, after: DirectReadHook
) -> None:
    """Run ``before(connection)`` before, and ``after(connection)`` after, each statement the
    stores send straight on a kept DBAPI connection of ``engine``, outside SQLAlchemy's
    ``Connection`` (their one-statement hot reads), so that what watches the engine's own
    statements and checkouts (a request deadline) sees these too.

    ``before`` may raise to refuse the read: nothing is sent, and its error passes on (the
    ``after`` hooks of those ``before`` that ran are still called). ``after`` is called once the
    statement returns or fails.
    """
    lean = _lean_connections(engine)
    with _LEAN_LOCK:
        lean.hooks = (*lean.hooks, (before, after))


def _lean_connections(engine: sa.Engine) -> _LeanConnections:
    """The engine's :class:`_LeanConnections`, shared by its readers (kept on the engine)."""
    with _LEAN_LOCK:
        found: _LeanConnections | None = engine.__dict__.get("_storno_lean")
        if found is None:
            found = engine.__dict__["_storno_lean"] = _LeanConnections(engine)
        return found


def _bounded(kept: dict[Any, Any]) -> dict[Any, Any]:
    """``kept``, with room for one more of at most :data:`_MEMO_SIZE` entries
    (:func:`~storno_security._memo.make_room`)."""
    return make_room(kept, _MEMO_SIZE)


class _Reader(Generic[_T]):
    """One ``SELECT`` of a hot read path (session state, API-key verification, a user's own
    records), compiled once, whose rows ``build`` turns into records.

    On a SQLite file database and on PostgreSQL (psycopg 3) the statement runs straight on a
    DBAPI connection that each thread keeps (:class:`_LeanConnections`), in autocommit mode:
    no ``BEGIN``, no ``COMMIT``, no pool checkout and so no pre-ping, only the one statement,
    which reads one consistent snapshot of committed data and holds no lock once its rows are
    fetched. On PostgreSQL a kept connection found broken is replaced and the read sent again,
    once (what the pool's pre-ping did). The database is read on every call; what is kept is
    the record last built from each raw row read at least twice (up to 4096 rows, the oldest
    evicted first): a row that reads exactly as before gives the same immutable record without
    running the column types' result processors and ``build`` again. A row read once is only
    noted, by its hash (an integer, which the garbage collector never walks): a stream of
    distinct rows (many API keys, each used once) then leaves no records behind to be promoted
    and swept, which paused requests for milliseconds, while a row read again is kept.
    Elsewhere (MariaDB, ``:memory:``, a custom pool) it is an ordinary read-only
    :func:`_transaction`.

    Only for one statement that reads: never for a read that another statement must see
    consistently, nor for any write.
    """

    def __init__(
        self, engine: sa.Engine, statement: sa.Select[Any], build: Callable[[Any], _T]
    ) -> None:
        self._engine = engine
        self._statement = statement
        self._build = build
        dialect = engine.dialect
        self._lean = _lean_dialect(engine)
        if not self._lean:
            return
        self._connections = _lean_connections(engine)
        self._retry = dialect.name != "sqlite"
        self._memo: dict[tuple[Any, ...], _T] = {}
        self._seen: dict[int, None] = {}  # hashes of the raw rows read once, oldest first
        compiled = statement.compile(dialect=dialect)
        self._sql = compiled.string
        self._positional = compiled.positiontup is not None
        self._bind_names = tuple(compiled.positiontup or compiled.binds)
        self._bind_processors = tuple(
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in self._bind_names
        )
        columns = list(statement.selected_columns)
        names: Any = [c.key for c in columns]
        self._row: Any = collections.namedtuple("_row", names)  # type: ignore[misc]
        processing = []
        for i, column in enumerate(columns):
            process = _direct_processor(column.type, dialect)
            if process is not None:
                processing.append((i, process))
        self._processing: tuple[tuple[int, Callable[[Any], Any]], ...] = tuple(processing)
        dbapi = dialect.loaded_dbapi
        self._unavailable = (dbapi.OperationalError, dbapi.InterfaceError)
        self._driver_error = dbapi.Error

    def one_or_none(self, params: dict[str, Any]) -> _T | None:
        """The record built from the one row the statement returns, or ``None``.

        Raises:
            StoreError: the database failed.
            StoreUnavailableError: the database could not be reached.
            CorruptRecordError: more than one row matched, or a value cannot be read (or
                ``build`` refused it).
        """
        if not self._lean:
            with _transaction(self._engine, read_only=True) as conn:
                row = _fetch_one(conn.execute(self._statement, params))
            return None if row is None else self._build(row)
        rows = self._fetch(params)
        if not rows:
            return None
        if len(rows) > 1:
            raise CorruptRecordError(reason="duplicate_row")
        raw = rows[0]
        record = self._memo.get(raw)
        if record is None:
            record = self._build(self._processed(raw))
            self._keep(raw, record)
        return record

    def collect(self, params: dict[str, Any]) -> _T | None:
        """What ``build`` makes of the list of every row, or ``None`` when there is none. The
        record is kept as :meth:`one_or_none` keeps it, by the raw rows.

        Raises:
            StoreError: the database failed.
            StoreUnavailableError: the database could not be reached.
            CorruptRecordError: a value cannot be read (or ``build`` refused it).
        """
        if not self._lean:
            with _transaction(self._engine, read_only=True) as conn:
                rows = _fetch(conn.execute(self._statement, params))
            return self._build(list(rows)) if rows else None
        raw = tuple(self._fetch(params))
        if not raw:
            return None
        record = self._memo.get(raw)
        if record is None:
            record = self._build([self._processed(row) for row in raw])
            self._keep(raw, record)
        return record

    def _keep(self, raw: Any, record: _T) -> None:
        seen = self._seen
        key = hash(raw)
        if key not in seen:  # a first sighting is only noted (a collision keeps a row early)
            _bounded(seen)[key] = None
            return
        _bounded(self._memo)[raw] = record

    def _fetch(self, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        values = [params[name] for name in self._bind_names]
        for i, process in enumerate(self._bind_processors):
            if process is not None:
                values[i] = process(values[i])
        names = self._bind_names
        bound: Any = values if self._positional else dict(zip(names, values, strict=True))
        while True:
            connection, fresh = self._connections.get()
            hooks = self._connections.hooks
            ran = 0
            try:
                for before, _ in hooks:
                    before(connection)  # may refuse (a deadline passed): nothing is sent
                    ran += 1
                rows: list[tuple[Any, ...]] = connection.execute(self._sql, bound).fetchall()
            except self._driver_error as exc:
                broken = getattr(connection, "broken", False) or getattr(connection, "closed", 0)
                self._connections.drop()
                if self._retry and broken and not fresh:
                    continue  # a kept connection the server closed meanwhile: once more
                if isinstance(exc, self._unavailable):
                    raise StoreUnavailableError(reason="unavailable") from exc
                raise StoreError("the database failed the operation", reason="backend") from exc
            finally:
                for _, after in hooks[:ran]:
                    after(connection)
            return rows

    def _processed(self, raw: tuple[Any, ...]) -> Any:
        values = list(raw)
        try:
            for i, process in self._processing:
                values[i] = process(values[i])
        except (ValueError, TypeError) as exc:
            raise CorruptRecordError(reason="unreadable") from exc
        return self._row._make(values)
