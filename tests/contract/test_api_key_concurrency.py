"""KEY-3 across processes: ``touch`` and ``revoke`` are each won exactly once.

Two processes of 25 threads each (50 callers) hit one key at the same instant, lined up by a
multiprocessing barrier, each on a connection of its own: first all call ``touch`` with the
same ``stale_before`` (one write of ``last_used_at`` however many requests arrive together),
then all call ``revoke`` (one caller revokes; the others see a revoked key).
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import missing_service
from tests.contract.test_api_key_store import new_record

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PROCESSES = 2
THREADS = 25
CALLERS = PROCESSES * THREADS
BARRIER_TIMEOUT = 60.0
RUN_TIMEOUT = 90.0
ROUNDS = ("touch", "revoke")


def _call_concurrently(url: str, key_id: str, barrier: Any, results: Any) -> None:
    """Body of one child process: ``THREADS`` threads, each calling once per round."""
    from storno_security.stores.sql import SqlApiKeyStore, create_engine

    engine = create_engine(url, pool_size=THREADS, max_overflow=5)
    store = SqlApiKeyStore(engine)
    warm = threading.Barrier(THREADS)

    def caller() -> None:
        round_name = "setup"
        try:
            connection = engine.raw_connection()
            try:
                warm.wait(timeout=BARRIER_TIMEOUT)
            finally:
                connection.close()
            for round_name in ROUNDS:
                barrier.wait(timeout=BARRIER_TIMEOUT)
                if round_name == "touch":
                    won = store.touch(key_id, now=NOW, stale_before=NOW - timedelta(seconds=60))
                else:
                    won = store.revoke(key_id, now=NOW)
                results.put((round_name, str(won)))
        except BaseException as exc:
            barrier.abort()
            results.put((round_name, f"error: {type(exc).__name__}: {exc}"))

    try:
        threads = [threading.Thread(target=caller) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        engine.dispose()


def _url_for(backend: str, sql_urls: dict[str, str | None], tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'api-key-concurrency.db'}"
    url = sql_urls[backend]
    if url is None:
        missing_service(backend, "no server on its port")
    assert url is not None
    return url


@pytest.mark.spec("KEY-3")
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb"])
def test_touch_and_revoke_are_won_once_across_processes(
    backend: str, sql_urls: dict[str, str | None], tmp_path: Path
) -> None:
    from storno_security.stores.sql import SqlApiKeyStore, create_engine, create_schema

    url = _url_for(backend, sql_urls, tmp_path)
    engine = create_engine(url)
    try:
        create_schema(engine)
        store = SqlApiKeyStore(engine)
        record = new_record()
        store.create(record)

        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(CALLERS)
        results = ctx.Queue()
        processes = [
            ctx.Process(
                target=_call_concurrently,
                args=(url, record.info.key_id, barrier, results),
                daemon=True,
            )
            for _ in range(PROCESSES)
        ]
        outcomes: list[tuple[str, str]] = []
        try:
            for process in processes:
                process.start()
            deadline = time.monotonic() + RUN_TIMEOUT
            while len(outcomes) < CALLERS * len(ROUNDS):
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
                if outcome[1].startswith("error"):
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

        errors = [o for o in outcomes if o[1].startswith("error")]
        assert not errors, errors[:3]
        assert len(outcomes) == CALLERS * len(ROUNDS), f"only {len(outcomes)} results"
        for round_name in ROUNDS:
            counted = Counter(won for name, won in outcomes if name == round_name)
            assert counted == {"True": 1, "False": CALLERS - 1}, (round_name, counted)
        info = store.get(record.info.key_id).info
        assert info.last_used_at == NOW
        assert info.revoked_at == NOW
    finally:
        engine.dispose()
