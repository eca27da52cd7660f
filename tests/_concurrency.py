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
RUN_TIMEOUT = 120.0

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

    def connect(self, pool_size: int) -> Any:
        """A SQLAlchemy engine or redis-py client with room for ``pool_size`` connections."""
        if self.is_redis:
            import redis

            return redis.Redis.from_url(
                self.url, max_connections=pool_size + 5, socket_timeout=10.0
            )
        from storno_security.stores.sql import create_engine

        # SQLite too: its file database is served by a QueuePool
        return create_engine(self.url, pool_size=pool_size, max_overflow=5)

    def close(self, handle: Any) -> None:
        if self.is_redis:
            handle.close()
        else:
            handle.dispose()

    @contextmanager
    def connected(self, pool_size: int = 2) -> Iterator[Any]:
        """An engine or client for the test's own set-up and checks, closed afterwards."""
        handle = self.connect(pool_size)
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
        raw = handle.raw_connection()
        return raw.close


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
                    warm.wait(timeout=BARRIER_TIMEOUT)
                finally:
                    release()
            for round_no in range(rounds):
                barrier.wait(timeout=BARRIER_TIMEOUT)
                results.put((round_no, True, act(round_no)))
        except BaseException as exc:
            warm.abort()
            barrier.abort()  # release everyone else now rather than at the timeout
            results.put((round_no, False, f"{type(exc).__name__}: {exc}"))

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


def _checked(raw: list[tuple[int, bool, Any]], expected: int) -> list[Outcome]:
    errors = [r for r in raw if not r[1]]
    assert not errors, errors[:3]
    assert len(raw) == expected, f"only {len(raw)} of {expected} results"
    return [(round_no, outcome) for round_no, _, outcome in raw]


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
    the run took longer than ``RUN_TIMEOUT``.
    """
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
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()
                child.join(timeout=5)
        results.close()
        results.join_thread()
    return _checked(raw, expected)


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
