"""One contract for every ``MfaFailureStore`` (memory, SQLite, PostgreSQL, MariaDB, Redis), and
the per-user limit on wrong second-factor codes across processes.

The cross-process test follows ``test_refresh_concurrency.py``: 2 spawned processes x 10
threads, each thread on a connection of its own, lined up on a multiprocessing barrier, each
presenting one wrong TOTP code for the same user. Every attempt is counted exactly once, and only
the first ``max_failures_per_user`` of them are evaluated; the others are refused unevaluated.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest

from storno_security.clock import FrozenClock
from storno_security.errors import CorruptRecordError
from storno_security.mfa.storage import FailureCount, MfaFailureStore
from tests.conftest import REDIS_URL, get_sql_engine, missing_service

NOW = datetime(2026, 3, 1, 12, 0, 7, tzinfo=UTC)
HOUR = timedelta(hours=1)
BACKENDS = ("memory", "sqlite", "postgresql", "mariadb", "redis")


def user() -> str:
    return f"user-{secrets.token_hex(6)}"


def _build(backend: str, request: pytest.FixtureRequest) -> Any:
    if backend == "memory":
        from storno_security.stores.memory import MemoryMfaFailureStore

        return MemoryMfaFailureStore()
    if backend == "redis":
        from storno_security.stores.redis import RedisMfaFailureStore

        return RedisMfaFailureStore(
            request.getfixturevalue("redis_client"), prefix=request.getfixturevalue("redis_prefix")
        )
    from storno_security.stores.sql import SqlMfaFailureStore

    engine = get_sql_engine(
        backend, request.getfixturevalue("sql_urls"), request.getfixturevalue("sql_engines")
    )
    return SqlMfaFailureStore(engine)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest) -> Any:
    return _build(str(request.param), request)


# --- contract --------------------------------------------------------------------------------


def test_is_a_failure_store(store: Any) -> None:
    assert isinstance(store, MfaFailureStore)
    assert type(store).__name__ in repr(store)


def test_the_first_attempt_opens_a_window(store: Any) -> None:
    counted = store.record_attempt(user(), now=NOW, window_ends_at=NOW + HOUR)
    assert counted == FailureCount(failures=1, window_ends_at=NOW + HOUR)


def test_attempts_add_up_within_the_window(store: Any) -> None:
    u = user()
    store.record_attempt(u, now=NOW, window_ends_at=NOW + HOUR)
    later = NOW + HOUR - timedelta(microseconds=1)
    counts = [store.record_attempt(u, now=later, window_ends_at=later + HOUR) for _ in range(4)]
    # the window stays the one the first attempt opened
    assert counts == [FailureCount(failures=n, window_ends_at=NOW + HOUR) for n in (2, 3, 4, 5)]


def test_a_new_window_starts_when_the_old_one_ends(store: Any) -> None:
    u = user()
    for _ in range(3):
        store.record_attempt(u, now=NOW, window_ends_at=NOW + HOUR)
    at_end = NOW + HOUR
    counted = store.record_attempt(u, now=at_end, window_ends_at=at_end + HOUR)
    assert counted == FailureCount(failures=1, window_ends_at=at_end + HOUR)
    counted = store.record_attempt(u, now=at_end, window_ends_at=at_end + 2 * HOUR)
    assert counted == FailureCount(failures=2, window_ends_at=at_end + HOUR)


def test_clearing_starts_over(store: Any) -> None:
    u = user()
    for _ in range(3):
        store.record_attempt(u, now=NOW, window_ends_at=NOW + HOUR)
    store.clear_failures(u)
    store.clear_failures(u)  # clearing nothing is fine
    store.clear_failures(user())
    later = NOW + timedelta(minutes=5)
    counted = store.record_attempt(u, now=later, window_ends_at=later + HOUR)
    assert counted == FailureCount(failures=1, window_ends_at=later + HOUR)


def test_users_are_counted_apart(store: Any) -> None:
    a, b = user(), user()
    store.record_attempt(a, now=NOW, window_ends_at=NOW + HOUR)
    store.record_attempt(a, now=NOW, window_ends_at=NOW + HOUR)
    assert store.record_attempt(b, now=NOW, window_ends_at=NOW + HOUR).failures == 1
    store.clear_failures(b)
    assert store.record_attempt(a, now=NOW, window_ends_at=NOW + HOUR).failures == 3


def test_times_round_trip_to_the_microsecond(store: Any) -> None:
    ends = NOW + timedelta(minutes=7, microseconds=123_457)
    counted = store.record_attempt(user(), now=NOW, window_ends_at=ends)
    assert counted.window_ends_at == ends
    assert counted.window_ends_at.utcoffset() == timedelta(0)


def test_purge_expired_forgets_ended_windows(store: Any) -> None:
    u = user()
    store.record_attempt(u, now=NOW, window_ends_at=NOW + HOUR)
    assert store.purge_expired(now=NOW) >= 0
    assert store.record_attempt(u, now=NOW, window_ends_at=NOW + HOUR).failures == 2
    removed = store.purge_expired(now=NOW + 2 * HOUR)
    assert removed >= (0 if type(store).__name__.startswith("Redis") else 1)
    later = NOW + 2 * HOUR
    assert store.record_attempt(u, now=later, window_ends_at=later + HOUR).failures == 1


def test_bad_arguments_are_caller_errors(store: Any) -> None:
    with pytest.raises(TypeError):
        store.record_attempt(42, now=NOW, window_ends_at=NOW + HOUR)
    with pytest.raises(ValueError, match="naive"):
        store.record_attempt(user(), now=NOW.replace(tzinfo=None), window_ends_at=NOW + HOUR)
    with pytest.raises(ValueError, match="naive"):
        store.record_attempt(user(), now=NOW, window_ends_at=(NOW + HOUR).replace(tzinfo=None))
    with pytest.raises(ValueError, match="window_ends_at"):
        store.record_attempt(user(), now=NOW, window_ends_at=NOW)  # an empty window
    with pytest.raises(TypeError):
        store.clear_failures(None)
    with pytest.raises(ValueError, match="naive"):
        store.purge_expired(now=NOW.replace(tzinfo=None))


def test_redis_refuses_a_corrupt_record(request: pytest.FixtureRequest) -> None:
    client = request.getfixturevalue("redis_client")
    prefix = request.getfixturevalue("redis_prefix")
    store = _build("redis", request)
    for value in ("not a hash", {"failures": "nan", "window_ends_at": "1"}, {"other": "1"}):
        u = user()
        key = f"{prefix}mfa:failures:{u}"
        if isinstance(value, str):
            client.set(key, value)
        else:
            client.hset(key, mapping=value)
        with pytest.raises(CorruptRecordError):
            store.record_attempt(u, now=NOW, window_ends_at=NOW + HOUR)


def test_redis_forgets_the_window_when_it_ends(request: pytest.FixtureRequest) -> None:
    client = request.getfixturevalue("redis_client")
    prefix = request.getfixturevalue("redis_prefix")
    store = _build("redis", request)
    u = user()
    store.record_attempt(u, now=NOW, window_ends_at=NOW + timedelta(seconds=90))
    ttl = client.pttl(f"{prefix}mfa:failures:{u}")
    assert 89_000 < ttl <= 90_000


def test_threads_count_every_attempt_once(store: Any) -> None:
    u = user()
    seen: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait(timeout=30)
        for _ in range(5):
            counted = store.record_attempt(u, now=NOW, window_ends_at=NOW + HOUR)
            with lock:
                seen.append(counted.failures)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == list(range(1, 41))


# --- across processes ------------------------------------------------------------------------

PROCESSES = 2
THREADS = 10
LIMIT = 7
BARRIER_TIMEOUT = 60.0
RUN_TIMEOUT = 120.0
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def _stores(backend: str, url: str, prefix: str, threads: int) -> tuple[Any, Any, Any]:
    """(engine or client, failure store, replay store), built inside a child process."""
    if backend == "redis":
        import redis

        from storno_security.stores import redis as redis_stores

        client = redis.Redis.from_url(url, max_connections=threads + 5)
        return (
            client,
            redis_stores.RedisMfaFailureStore(client, prefix=prefix),
            redis_stores.RedisTotpReplayStore(client, prefix=prefix),
        )
    from storno_security.stores import sql

    engine = sql.create_engine(url, pool_size=threads, max_overflow=5)
    return engine, sql.SqlMfaFailureStore(engine), sql.SqlTotpReplayStore(engine)


def _child(
    backend: str,
    url: str,
    prefix: str,
    user_id: str,
    code: str,
    barrier: Any,
    results: Any,
) -> None:
    from storno_security.errors import InvalidMfaCodeError, MfaLockedError
    from storno_security.mfa import MfaLockout, MfaPolicy, TotpAuthenticator

    evaluating = threading.local()

    class Watched(TotpAuthenticator):
        """Notes, per thread, whether the code was evaluated (its HOTP values computed)."""

        def _code_maker(self, key: bytes) -> Any:
            evaluating.seen = True
            return super()._code_maker(key)

    handle, failures, replay = _stores(backend, url, prefix, THREADS)
    clock = FrozenClock(NOW)
    policy = MfaPolicy(max_failures_per_user=LIMIT)
    lockout = MfaLockout(policy, store=failures, clock=clock)
    totp = Watched(policy.totp, replay=replay, clock=clock, lockout=lockout)
    warm = threading.Barrier(THREADS)

    def worker() -> None:
        try:
            if backend != "redis":
                connection = handle.raw_connection()  # hold a pooled connection each
                try:
                    warm.wait(timeout=BARRIER_TIMEOUT)
                finally:
                    connection.close()
            barrier.wait(timeout=BARRIER_TIMEOUT)
            evaluating.seen = False
            try:
                totp.verify(code, secret=SECRET, user_id=user_id)
            except InvalidMfaCodeError as exc:
                outcome = exc.reason
            except MfaLockedError:
                outcome = "locked"
            else:
                outcome = "passed"
            seen = "evaluated" if evaluating.seen else "unevaluated"
            results.put(f"{seen}:{outcome}")
        except BaseException as exc:
            barrier.abort()
            results.put(f"error: {type(exc).__name__}: {exc}")

    try:
        workers = [threading.Thread(target=worker) for _ in range(THREADS)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
    finally:
        if backend == "redis":
            handle.close()
        else:
            handle.dispose()


def _hammer(backend: str, url: str, prefix: str, user_id: str, code: str) -> Counter[str]:
    ctx = multiprocessing.get_context("spawn")
    total = PROCESSES * THREADS
    barrier = ctx.Barrier(total)
    results = ctx.Queue()
    processes = [
        ctx.Process(
            target=_child,
            args=(backend, url, prefix, user_id, code, barrier, results),
            daemon=True,
        )
        for _ in range(PROCESSES)
    ]
    outcomes: list[str] = []
    try:
        for process in processes:
            process.start()
        deadline = time.monotonic() + RUN_TIMEOUT
        while len(outcomes) < total:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                outcomes.append(results.get(timeout=min(remaining, 1.0)))
            except queue_module.Empty:
                if not any(p.is_alive() for p in processes) and results.empty():
                    break
                continue
            if outcomes[-1].startswith("error"):
                break
        for process in processes:
            process.join(timeout=10)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
        results.close()
        results.join_thread()
    errors = [o for o in outcomes if o.startswith("error")]
    assert not errors, errors[:3]
    assert len(outcomes) == total, f"only {len(outcomes)} results"
    return Counter(outcomes)


@pytest.fixture
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    backend = str(request.param)
    if backend == "redis":
        request.getfixturevalue("redis_client")  # skips (or fails in CI) without a server
        yield backend, REDIS_URL
        return
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'mfa-failures.db'}"
    else:
        found = request.getfixturevalue("sql_urls")[backend]
        if found is None:
            missing_service(backend, "no server on its port")
        url = found
    from storno_security.stores.sql import create_engine, create_schema

    engine = create_engine(url)
    create_schema(engine)
    engine.dispose()
    yield backend, url


@pytest.mark.spec("MFA-4")
@pytest.mark.slow
@pytest.mark.parametrize("backend_url", ["sqlite", "postgresql", "mariadb", "redis"], indirect=True)
def test_twenty_wrong_codes_at_once_evaluate_exactly_the_limit(
    backend_url: tuple[str, str], redis_prefix: str
) -> None:
    from storno_security.errors import MfaLockedError
    from storno_security.mfa import MfaLockout, MfaPolicy, TotpAuthenticator

    backend, url = backend_url
    user_id = user()
    right = pyotp.TOTP(SECRET).at(NOW)
    valid = {pyotp.TOTP(SECRET).at(NOW, counter_offset=o) for o in (-1, 0, 1)}
    nearby = (f"{(int(right) + k) % 1_000_000:06d}" for k in range(1, 9))
    wrong = next(code for code in nearby if code not in valid)

    outcomes = _hammer(backend, url, redis_prefix, user_id, wrong)
    assert outcomes == {
        "evaluated:mismatch": LIMIT,
        "unevaluated:locked": PROCESSES * THREADS - LIMIT,
    }

    handle, failures, replay = _stores(backend, url, redis_prefix, 1)
    try:
        # the count is exactly the number of attempts: this one is the 21st
        counted = failures.record_attempt(user_id, now=NOW, window_ends_at=NOW + HOUR)
        assert counted.failures == PROCESSES * THREADS + 1
        clock = FrozenClock(NOW)
        policy = MfaPolicy(max_failures_per_user=LIMIT)
        lockout = MfaLockout(policy, store=failures, clock=clock)
        totp = TotpAuthenticator(policy.totp, replay=replay, clock=clock, lockout=lockout)
        with pytest.raises(MfaLockedError):  # and the right code is refused too
            totp.verify(right, secret=SECRET, user_id=user_id)
    finally:
        if backend == "redis":
            handle.close()
        else:
            handle.dispose()
