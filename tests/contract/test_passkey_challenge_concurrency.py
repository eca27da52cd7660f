"""PK-2 across processes: of many simultaneous consumers of one challenge, exactly one wins.

Two processes of 25 threads each (50 consumers) consume the same stored challenge at the same
instant, lined up by a multiprocessing barrier, each on a connection of its own. Exactly one gets
the challenge record; the 49 others get nothing. That is what a replayed WebAuthn response raced
against the genuine one looks like.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import queue as queue_module
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from storno_security.passkeys.storage import ChallengePurpose, PasskeyChallenge
from tests.conftest import REDIS_URL, missing_service

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PROCESSES = 2
THREADS = 25
CONSUMERS = PROCESSES * THREADS
BARRIER_TIMEOUT = 60.0
RUN_TIMEOUT = 90.0


def _make_store(backend: str, url: str, prefix: str) -> tuple[Any, Any]:
    """The store under test and a function that releases its connections."""
    if backend == "redis":
        import redis

        from storno_security.stores.redis import RedisPasskeyChallengeStore

        pool = redis.ConnectionPool.from_url(url, max_connections=THREADS + 5)
        client = redis.Redis(connection_pool=pool)
        return RedisPasskeyChallengeStore(client, prefix=prefix), pool.disconnect
    from storno_security.stores.sql import SqlPasskeyChallengeStore, create_engine

    engine = create_engine(url, pool_size=THREADS, max_overflow=5)
    return SqlPasskeyChallengeStore(engine), engine.dispose


def _consume_concurrently(
    backend: str, url: str, prefix: str, challenge_hash: str, barrier: Any, results: Any
) -> None:
    """Body of one child process: ``THREADS`` threads, each consuming once."""
    store, close = _make_store(backend, url, prefix)

    def consumer() -> None:
        try:
            barrier.wait(timeout=BARRIER_TIMEOUT)
            record = store.consume(challenge_hash, now=NOW)
            results.put("won" if record is not None else "lost")
        except BaseException as exc:
            barrier.abort()
            results.put(f"error: {type(exc).__name__}: {exc}")

    try:
        threads = [threading.Thread(target=consumer) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        close()


def _url_for(
    backend: str, request: pytest.FixtureRequest, sql_urls: dict[str, str | None], tmp_path: Path
) -> str:
    if backend == "redis":
        request.getfixturevalue("redis_client")  # skips (or fails in CI) without a server
        return REDIS_URL
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'passkey-concurrency.db'}"
    url = sql_urls[backend]
    if url is None:
        missing_service(backend, "no server on its port")
    assert url is not None
    return url


@pytest.mark.spec("PK-2")
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb", "redis"])
def test_one_winner_among_concurrent_consumers(
    backend: str,
    request: pytest.FixtureRequest,
    sql_urls: dict[str, str | None],
    redis_prefix: str,
    tmp_path: Path,
) -> None:
    url = _url_for(backend, request, sql_urls, tmp_path)
    if backend != "redis":
        from storno_security.stores.sql import create_engine, create_schema

        engine = create_engine(url)
        create_schema(engine)
        engine.dispose()
    store, close = _make_store(backend, url, redis_prefix)
    challenge = PasskeyChallenge(
        challenge_hash=hashlib.sha256(secrets.token_bytes(32)).hexdigest(),
        purpose=ChallengePurpose.AUTHENTICATION,
        user_id=None,
        expires_at=NOW + timedelta(minutes=5),
    )
    try:
        store.put(challenge, now=NOW)
    finally:
        close()

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(CONSUMERS)
    results = ctx.Queue()
    processes = [
        ctx.Process(
            target=_consume_concurrently,
            args=(backend, url, redis_prefix, challenge.challenge_hash, barrier, results),
            daemon=True,
        )
        for _ in range(PROCESSES)
    ]
    outcomes: list[str] = []
    try:
        for process in processes:
            process.start()
        deadline = time.monotonic() + RUN_TIMEOUT
        while len(outcomes) < CONSUMERS:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                outcome = results.get(timeout=min(remaining, 1.0))
            except queue_module.Empty:
                if not any(p.is_alive() for p in processes) and results.empty():
                    break
                continue
            outcomes.append(outcome)
            if outcome.startswith("error"):
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
    assert len(outcomes) == CONSUMERS, f"only {len(outcomes)} results"
    assert outcomes.count("won") == 1
    assert outcomes.count("lost") == CONSUMERS - 1
