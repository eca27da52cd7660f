"""REF-2 across processes: of many simultaneous presentations of one refresh token, one wins.

Two processes of 25 threads each (50 presenters) present the same live refresh token to
``SqlRefreshFamilyStore.rotate`` at the same instant, lined up by a multiprocessing barrier,
each on a connection of its own. Exactly one rotates; every other one finds the token used, which
is what a stolen token presented alongside its owner looks like (REF-3), so the family ends
revoked. A second volley of 50 presentations is all reuse, and the winner's new token is dead.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import queue as queue_module
import secrets
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from storno_security.tokens.storage import RefreshFamily, RotationOutcome
from tests.conftest import missing_service

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PROCESSES = 2
THREADS = 25
PRESENTERS = PROCESSES * THREADS
ROUNDS = 2
BARRIER_TIMEOUT = 60.0
RUN_TIMEOUT = 90.0


def _hash() -> str:
    return hashlib.sha256(secrets.token_bytes(32)).hexdigest()


def _present_concurrently(
    url: str,
    presented_hash: str,
    new_hashes: list[list[str]],
    barrier: Any,
    results: Any,
) -> None:
    """Body of one child process: ``THREADS`` threads, each presenting once per round.

    Every thread holds a pooled connection before the first barrier, so the presentations
    reach the database together rather than after a burst of connects. Each result goes to
    ``results`` as ``(round, new_hash, outcome value)``, or ``(round, "", "error: ...")``.
    """
    from storno_security.stores.sql import SqlRefreshFamilyStore, create_engine

    # SQLite too: its file database is served by a QueuePool, and every thread holds a connection
    engine = create_engine(url, pool_size=THREADS, max_overflow=5)
    store = SqlRefreshFamilyStore(engine)
    warm = threading.Barrier(THREADS)

    def presenter(hashes: list[str]) -> None:
        round_no = -1
        try:
            # Open a pooled connection for this thread (without a transaction, which on SQLite
            # would take the write lock), and keep it until every thread holds one.
            connection = engine.raw_connection()
            try:
                warm.wait(timeout=BARRIER_TIMEOUT)
            finally:
                connection.close()
            for round_no, new_hash in enumerate(hashes):
                barrier.wait(timeout=BARRIER_TIMEOUT)
                rotation = store.rotate(presented_hash=presented_hash, new_hash=new_hash, now=NOW)
                results.put((round_no, new_hash, rotation.outcome.value))
        except BaseException as exc:
            barrier.abort()  # release everyone else now rather than at the timeout
            results.put((round_no, "", f"error: {type(exc).__name__}: {exc}"))

    try:
        threads = [threading.Thread(target=presenter, args=(h,)) for h in new_hashes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        engine.dispose()


def _url_for(backend: str, sql_urls: dict[str, str | None], tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'concurrency.db'}"
    url = sql_urls[backend]
    if url is None:
        missing_service(backend, "no server on its port")
    assert url is not None
    return url


@pytest.mark.spec("REF-2")
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb"])
def test_one_winner_among_concurrent_presentations(
    backend: str, sql_urls: dict[str, str | None], tmp_path: Path
) -> None:
    from storno_security.stores.sql import SqlRefreshFamilyStore, create_engine, create_schema

    url = _url_for(backend, sql_urls, tmp_path)
    engine = create_engine(url)
    try:
        create_schema(engine)
        store = SqlRefreshFamilyStore(engine)
        family = RefreshFamily(
            family_id=secrets.token_hex(16),
            user_id=f"user-{secrets.token_hex(6)}",
            created_at=NOW,
            expires_at=NOW + timedelta(days=30),
        )
        presented = _hash()
        store.create_family(family, token_hash=presented)

        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(PRESENTERS)
        results = ctx.Queue()
        per_process = [
            [[_hash() for _ in range(ROUNDS)] for _ in range(THREADS)] for _ in range(PROCESSES)
        ]
        processes = [
            ctx.Process(
                target=_present_concurrently,
                args=(url, presented, hashes, barrier, results),
                daemon=True,
            )
            for hashes in per_process
        ]
        outcomes: list[tuple[int, str, str]] = []
        try:
            for process in processes:
                process.start()
            deadline = time.monotonic() + RUN_TIMEOUT
            while len(outcomes) < PRESENTERS * ROUNDS:
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
                if outcome[2].startswith("error"):
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

        errors = [o for o in outcomes if o[2].startswith("error")]
        assert not errors, errors[:3]
        assert len(outcomes) == PRESENTERS * ROUNDS, f"only {len(outcomes)} results"

        first = Counter(o[2] for o in outcomes if o[0] == 0)
        assert first == {"rotated": 1, "reused": PRESENTERS - 1}
        second = Counter(o[2] for o in outcomes if o[0] == 1)
        assert second == {"reused": PRESENTERS}

        # the losers of the first volley revoked the family ...
        assert store.revoke_family(family.family_id, now=NOW) is False
        # ... so the token the winner received is dead too
        (winner_hash,) = [o[1] for o in outcomes if o[2] == "rotated"]
        after = store.rotate(presented_hash=winner_hash, new_hash=_hash(), now=NOW)
        assert after.outcome is RotationOutcome.REVOKED
        assert after.family == family
    finally:
        engine.dispose()
