"""One harness for the "exactly once" tests: spawned processes x threads behind one barrier.

A test names the store it hammers by a picklable :class:`StoreSpec` (backend, URL, Redis prefix)
and two picklable callables, top-level functions or ``functools.partial`` of them:

* ``build(spec, handle)`` runs once in every child process and turns the process's own engine
  or Redis client into whatever the threads share (a store, a dict of stores, a service);
* ``call(built, round_no)`` is the one operation every thread makes at once in each round; what
  it returns (picklable) is that thread's outcome.

Every thread first holds a pooled connection of its own until all threads of its process hold
one, so that the calls reach the server together rather than after a burst of connects; then, in
each round, all threads of all processes wait on one multiprocessing barrier and call at once.
:func:`hammer` returns every ``(round_no, outcome)`` after checking that no thread failed and
that no outcome is missing, so a test only counts winners.

Database servers are shared by every test run on the machine (PostgreSQL's ``max_connections``
is 100 here, 3 of them reserved), so a run on PostgreSQL or MariaDB is bounded and takes turns:

* it may hold at most :data:`SERVER_CONNECTION_CAP` connections (processes x threads; the child
  pools have no overflow), else :func:`hammer` refuses it before starting anything;
* it holds the server's concurrency-test slot (:func:`server_slot`: an advisory lock on
  PostgreSQL, ``GET_LOCK`` on MariaDB) for its whole run, so two suites' runs never add up;
* a connection refused because the server is full ("too many clients") is retried with backoff
  for up to :data:`CONNECT_PATIENCE` seconds (other suites' ordinary tests come and go);
* the first barrier waits :data:`START_TIMEOUT` (spawning and importing is slow on a loaded
  machine), later ones :data:`BARRIER_TIMEOUT`;
* a failure names its root cause first, counts the callers that only saw the broken barrier,
  and says so when the server ran out of connections.
"""

from __future__ import annotations

import functools
import multiprocessing
import queue as queue_module
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import REDIS_URL, missing_service

BARRIER_TIMEOUT = 60.0
START_TIMEOUT = 120.0
RUN_TIMEOUT = 240.0
CONNECT_PATIENCE = 60.0
SLOT_TIMEOUT = 600.0

#: The most connections one run may hold on a database server: 2 processes x 25 threads (what
#: the exactly-once tests need) leave room for the test's own engine and other suites.
SERVER_CONNECTION_CAP = 60
SERVER_BACKENDS = ("postgresql", "mariadb")
#: How PostgreSQL and MariaDB say they are full.
_EXHAUSTED = (
    "too many clients",
    "too many connections",
    "remaining connection slots are reserved",
)
_SLOT_KEY = 0x53_54_4F_52_4E_4F  # "STORNO": the advisory-lock key of the slot
_SLOT_NAME = "storno-tests-concurrency"

Outcome = tuple[int, Any]
T = TypeVar("T")


@dataclass(frozen=True)
class StoreSpec:
    """Where the store under test lives; picklable, so every child process can connect."""

    backend: str
    url: str
    prefix: str = ""

    @property
    def is_redis(self) -> bool:
        return self.backend == "redis"

    def connect(self, pool_size: int, *, overflow: int = 0) -> Any:
        """A SQLAlchemy engine or redis-py client with room for ``pool_size`` connections
        (plus ``overflow`` more, on SQL; the child processes of :func:`hammer` get none)."""
        if self.is_redis:
            import redis

            return redis.Redis.from_url(
                self.url, max_connections=pool_size + 5, socket_timeout=10.0
            )
        from storno_security.stores.sql import create_engine

        # SQLite too: its file database is served by a QueuePool
        return create_engine(
            self.url, pool_size=pool_size, max_overflow=overflow, pool_timeout=CONNECT_PATIENCE
        )

    def close(self, handle: Any) -> None:
        if self.is_redis:
            handle.close()
        else:
            handle.dispose()

    @contextmanager
    def connected(self, pool_size: int = 2) -> Iterator[Any]:
        """An engine or client for the test's own set-up and checks, closed afterwards."""
        handle = self.connect(pool_size, overflow=5)
        try:
            yield handle
        finally:
            self.close(handle)

    def hold_connection(self, handle: Any) -> Callable[[], None]:
        """Take one pooled, open connection (no transaction); return what gives it back."""
        if self.is_redis:
            pool = handle.connection_pool
            connection = pool.get_connection()
            return lambda: pool.release(connection)
        raw = patiently(handle.raw_connection)
        return raw.close


def _exhausted(error: object) -> bool:
    """Whether an error (or its text) is a database server refusing a connection for being full."""
    text = str(error).lower()
    return any(marker in text for marker in _EXHAUSTED)


def patiently(connect: Callable[[], T], *, patience: float = CONNECT_PATIENCE) -> T:
    """``connect()``, retried with backoff while the server is full ("too many clients"), for up
    to ``patience`` seconds: other test runs on the machine hold connections for a moment. Any
    other error, or a full server past the patience, is raised at once."""
    deadline = time.monotonic() + patience
    delay = 0.05
    while True:
        try:
            return connect()
        except Exception as exc:
            remaining = deadline - time.monotonic()
            if not _exhausted(exc) or remaining <= 0:
                raise
            # a backoff against a shared server, not a wait for test time to pass
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 1.0)


@contextmanager
def server_slot(spec: StoreSpec, *, timeout: float = SLOT_TIMEOUT) -> Iterator[None]:
    """Hold the database server's concurrency-test slot (nothing on SQLite and Redis).

    Every :func:`hammer` run on a server takes it, so runs of different test suites sharing the
    server take turns instead of adding up past ``max_connections``. PostgreSQL: an advisory
    lock, taken in the ``postgres`` database (advisory locks are per database, and every run
    has its own); MariaDB: ``GET_LOCK`` (server-wide). Released when the run ends, or when its
    connection closes (a killed run frees it). Fails the test with a clear message after
    ``timeout`` seconds.
    """
    if spec.backend not in SERVER_BACKENDS:
        yield
        return
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    url = sa.make_url(spec.url)
    if spec.backend == "postgresql":
        url = url.set(database="postgres")
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with patiently(engine.connect) as connection:
            if spec.backend == "postgresql":
                connection.execute(sa.text(f"SET statement_timeout = {int(timeout * 1000)}"))
                try:
                    connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": _SLOT_KEY})
                    got = True
                except sa.exc.OperationalError:
                    got = False
                release = sa.text("SELECT pg_advisory_unlock(:key)")
                arguments: dict[str, Any] = {"key": _SLOT_KEY}
            else:
                got = (
                    connection.execute(
                        sa.text("SELECT GET_LOCK(:name, :timeout)"),
                        {"name": _SLOT_NAME, "timeout": int(timeout)},
                    ).scalar()
                    == 1
                )
                release = sa.text("SELECT RELEASE_LOCK(:name)")
                arguments = {"name": _SLOT_NAME}
            connection.commit()
            if not got:
                raise AssertionError(
                    f"no concurrency-test slot on {spec.backend} within {timeout:.0f} s: "
                    "another test run has been hammering that server all this time"
                )
            try:
                yield
            finally:
                connection.execute(release, arguments)
                connection.commit()
    finally:
        engine.dispose()


def store_spec(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> StoreSpec:
    """The spec of ``backend`` for this test, with the schema created; skip/fail without a server.

    SQLite gets a file database of the test's own; Redis the run's prefix.
    """
    if backend == "redis":
        request.getfixturevalue("redis_client")  # skips (or fails in CI) without a server
        return StoreSpec(backend, REDIS_URL, str(request.getfixturevalue("redis_prefix")))
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'concurrency.db'}"
    else:
        found = request.getfixturevalue("sql_urls")[backend]
        if found is None:
            missing_service(backend, "no server on its port")
        url = str(found)
    from storno_security.stores.sql import create_engine, create_schema

    engine = create_engine(url)
    try:
        create_schema(engine)
    finally:
        engine.dispose()
    return StoreSpec(backend, url)


def _run_threads(
    acts: Sequence[Callable[[int], Any]],
    *,
    rounds: int,
    barrier: Any,
    results: Any,
    hold: Callable[[], Callable[[], None]] | None,
) -> None:
    """Start a thread per act, each calling it once per round behind ``barrier``; join them."""
    warm = threading.Barrier(len(acts))

    def body(act: Callable[[int], Any]) -> None:
        round_no = -1
        try:
            if hold is not None:
                release = hold()
                try:
                    warm.wait(timeout=START_TIMEOUT)
                finally:
                    release()
            for round_no in range(rounds):
                barrier.wait(timeout=START_TIMEOUT if round_no == 0 else BARRIER_TIMEOUT)
                results.put((round_no, True, act(round_no)))
        except BaseException as exc:
            # the cause first, then release everyone else now rather than at the timeout
            results.put((round_no, False, f"{type(exc).__name__}: {exc}"))
            warm.abort()
            barrier.abort()

    workers = [threading.Thread(target=body, args=(act,)) for act in acts]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=RUN_TIMEOUT)


def _child(
    spec: StoreSpec,
    build: Callable[[StoreSpec, Any], Any],
    call: Callable[[Any, int], Any],
    threads: int,
    rounds: int,
    barrier: Any,
    results: Any,
) -> None:
    """Body of one child process: its own engine or client, ``threads`` threads on it."""
    try:
        handle = spec.connect(threads)
    except BaseException as exc:
        barrier.abort()
        results.put((-1, False, f"{type(exc).__name__}: {exc}"))
        return
    try:
        built = build(spec, handle)
        _run_threads(
            [functools.partial(call, built)] * threads,
            rounds=rounds,
            barrier=barrier,
            results=results,
            hold=lambda: spec.hold_connection(handle),
        )
    except BaseException as exc:
        barrier.abort()
        results.put((-1, False, f"{type(exc).__name__}: {exc}"))
    finally:
        spec.close(handle)


def _checked(raw: list[tuple[int, bool, Any]], expected: int, note: str = "") -> list[Outcome]:
    """The outcomes, or an AssertionError that names the root cause of a failed run."""
    errors = [(round_no, str(text)) for round_no, ok, text in raw if not ok]
    if errors:
        causes = [e for e in errors if not e[1].startswith("BrokenBarrierError")]
        stopped = len(errors) - len(causes)
        lines = [f"{len(causes)} caller(s) failed, {stopped} more stopped at the broken barrier"]
        lines += [f"  round {round_no}: {text}" for round_no, text in causes[:3]]
        if any(_exhausted(text) for _, text in causes):
            lines.append(
                "  the database server ran out of connections: this run holds at most "
                f"{SERVER_CONNECTION_CAP}, so other test runs (or a leak) held the rest of "
                "max_connections; run fewer suites at once"
            )
        if not causes:
            lines = [
                f"{len(errors)} caller(s) saw a broken barrier and none failed otherwise: a caller "
                "or a process stalled past the barrier timeout (a heavily loaded machine?)",
                f"  round {errors[0][0]}: {errors[0][1]}",
            ]
        if note:
            lines.append(f"  {note}")
        raise AssertionError("\n".join(lines))
    if len(raw) != expected:
        raise AssertionError(f"only {len(raw)} of {expected} results {note}".rstrip())
    return [(round_no, outcome) for round_no, _, outcome in raw]


def _drain(results: Any) -> list[tuple[int, bool, Any]]:
    """What is left in a multiprocessing queue whose writers have exited."""
    drained = []
    while True:
        try:
            drained.append(results.get(timeout=0.5))
        except queue_module.Empty:
            return drained


def hammer(
    spec: StoreSpec,
    build: Callable[[StoreSpec, Any], Any],
    call: Callable[[Any, int], Any],
    *,
    processes: int = 2,
    threads: int = 25,
    rounds: int = 1,
) -> list[Outcome]:
    """Run ``call`` from ``processes`` x ``threads`` callers at once, ``rounds`` times.

    Returns every ``(round_no, outcome)``; fails the test if a caller raised, a process died or
    the run took longer than ``RUN_TIMEOUT``. On PostgreSQL and MariaDB the run holds the
    server's slot (:func:`server_slot`) and at most :data:`SERVER_CONNECTION_CAP` connections.

    Raises:
        ValueError: the run would hold more connections than the cap.
    """
    callers = processes * threads
    if spec.backend in SERVER_BACKENDS and callers > SERVER_CONNECTION_CAP:
        raise ValueError(
            f"{processes} processes x {threads} threads would hold {callers} connections to "
            f"{spec.backend} at once; the cap per run is {SERVER_CONNECTION_CAP} (the server's "
            "max_connections is shared by every test run on the machine)"
        )
    with server_slot(spec):
        return _hammer(spec, build, call, processes=processes, threads=threads, rounds=rounds)


def _hammer(
    spec: StoreSpec,
    build: Callable[[StoreSpec, Any], Any],
    call: Callable[[Any, int], Any],
    *,
    processes: int,
    threads: int,
    rounds: int,
) -> list[Outcome]:
    ctx = multiprocessing.get_context("spawn")
    expected = processes * threads * rounds
    barrier = ctx.Barrier(processes * threads)
    results = ctx.Queue()
    children = [
        ctx.Process(
            target=_child,
            args=(spec, build, call, threads, rounds, barrier, results),
            daemon=True,
        )
        for _ in range(processes)
    ]
    raw: list[tuple[int, bool, Any]] = []
    try:
        for child in children:
            child.start()
        deadline = time.monotonic() + RUN_TIMEOUT
        while len(raw) < expected:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                raw.append(results.get(timeout=min(remaining, 1.0)))
            except queue_module.Empty:
                if not any(c.is_alive() for c in children) and results.empty():
                    break
                continue
            if not raw[-1][1]:
                break
        for child in children:
            child.join(timeout=10)
        if len(raw) < expected:
            raw.extend(_drain(results))  # the root cause may come after the first failure
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()
                child.join(timeout=5)
        results.close()
        results.join_thread()
    exits = [child.exitcode for child in children]
    note = "" if all(code == 0 for code in exits) else f"(child exit codes: {exits})"
    return _checked(raw, expected, note)


def _in_threads(acts: Sequence[Callable[[int], Any]], rounds: int) -> list[Outcome]:
    barrier = threading.Barrier(len(acts))
    results: queue_module.Queue[tuple[int, bool, Any]] = queue_module.Queue()
    _run_threads(acts, rounds=rounds, barrier=barrier, results=results, hold=None)
    raw = []
    while not results.empty():
        raw.append(results.get_nowait())
    return _checked(raw, len(acts) * rounds)


def hammer_threads(
    built: Any, call: Callable[[Any, int], Any], *, threads: int, rounds: int = 1
) -> list[Outcome]:
    """:func:`hammer` within this process: ``threads`` threads share ``built`` (a memory store)."""
    return _in_threads([functools.partial(call, built)] * threads, rounds)


def at_once(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Make every call from a thread of its own, all at once behind one barrier.

    Returns the results in the order they came; fails the test if a call raised.
    """
    return [outcome for _, outcome in _in_threads([_ignoring_round(c) for c in calls], 1)]


def _ignoring_round(call: Callable[[], T]) -> Callable[[int], T]:
    return lambda round_no: call()


def per_round(
    outcomes: list[Outcome], round_no: int, *, key: Callable[[Any], Any] | None = None
) -> Counter[Any]:
    """How many callers got each outcome (or each ``key(outcome)``) in round ``round_no``."""
    return Counter(
        outcome if key is None else key(outcome)
        for number, outcome in outcomes
        if number == round_no
    )
