"""RL-1 and RL-4 across processes: 2 processes x 10 threads hammer the login policy (5/min) of one
client through Redis, lined up by a multiprocessing barrier; exactly 5 get through per window.

Time is not slept through: each volley runs at a fixed instant given to a frozen clock, 0 s,
60 s (the first five have just left the window), 119.999 s (the second five are still in it)
and 120 s. The memory storage gets the same volleys from 20 threads of one process.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
import secrets
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from storno_security.clock import FrozenClock
from storno_security.ratelimit import RateLimiter, RateLimitStorage, spec_policies
from storno_security.stores.memory import MemoryRateLimitStorage
from tests.conftest import REDIS_URL

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PROCESSES = 2
THREADS = 10
HITTERS = PROCESSES * THREADS
#: (instant of the volley in ms after NOW, how many of the 20 hits may pass)
VOLLEYS = ((0, 5), (60_000, 5), (119_999, 0), (120_000, 5))
IP = "203.0.113.50"
BARRIER_TIMEOUT = 60.0
RUN_TIMEOUT = 90.0


def _volleys(storage: RateLimitStorage, barrier: Any, results: Any) -> None:
    """Body of one thread: one login hit per volley, each at the volley's instant."""
    volley = -1
    try:
        for volley, (offset_ms, _) in enumerate(VOLLEYS):
            clock = FrozenClock(NOW + timedelta(milliseconds=offset_ms))
            limiter = RateLimiter(storage, clock=clock, policies=spec_policies())
            barrier.wait(timeout=BARRIER_TIMEOUT)
            try:
                limiter.hit("login", IP)
                results.put((volley, "allowed"))
            except Exception as exc:
                results.put((volley, type(exc).__name__))
    except BaseException as exc:
        barrier.abort()
        results.put((volley, f"error: {type(exc).__name__}: {exc}"))


def _hit_from_process(prefix: str, barrier: Any, results: Any) -> None:
    """Body of one child process: ``THREADS`` threads on one client with a connection each."""
    import redis

    from storno_security.stores.redis import RedisRateLimitStorage

    client = redis.Redis.from_url(REDIS_URL, max_connections=THREADS + 2, socket_timeout=10)
    try:
        # open one pooled connection per thread before the volleys, so they start together
        connections = [client.connection_pool.get_connection() for _ in range(THREADS)]
        for connection in connections:
            client.connection_pool.release(connection)
        storage = RedisRateLimitStorage(client, prefix=prefix)
        threads = [
            threading.Thread(target=_volleys, args=(storage, barrier, results))
            for _ in range(THREADS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        client.close()


def _check(outcomes: list[tuple[int, str]]) -> None:
    errors = [o for o in outcomes if o[1].startswith("error")]
    assert not errors, errors[:3]
    assert len(outcomes) == HITTERS * len(VOLLEYS), f"only {len(outcomes)} results"
    for volley, (_, passing) in enumerate(VOLLEYS):
        counted = Counter(o[1] for o in outcomes if o[0] == volley)
        expected = {"allowed": passing, "RateLimitExceededError": HITTERS - passing}
        assert counted == {k: v for k, v in expected.items() if v}, (volley, counted)


@pytest.mark.spec("RL-1")
@pytest.mark.spec("RL-4")
@pytest.mark.slow
def test_exactly_five_logins_per_window_across_processes(
    redis_client: Any, redis_prefix: str
) -> None:
    prefix = f"{redis_prefix}conc{secrets.token_hex(4)}:"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(HITTERS)
    results = ctx.Queue()
    processes = [
        ctx.Process(target=_hit_from_process, args=(prefix, barrier, results), daemon=True)
        for _ in range(PROCESSES)
    ]
    outcomes: list[tuple[int, str]] = []
    try:
        for process in processes:
            process.start()
        deadline = time.monotonic() + RUN_TIMEOUT
        while len(outcomes) < HITTERS * len(VOLLEYS):
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
    _check(outcomes)
    # the log never holds more than the limit
    assert redis_client.llen(f"{prefix}rl:sw:login:{IP}") == 5


@pytest.mark.spec("RL-1")
def test_exactly_five_logins_per_window_across_threads_in_memory() -> None:
    storage = MemoryRateLimitStorage()
    barrier = threading.Barrier(HITTERS)
    results: queue_module.Queue[tuple[int, str]] = queue_module.Queue()
    threads = [
        threading.Thread(target=_volleys, args=(storage, barrier, results)) for _ in range(HITTERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=RUN_TIMEOUT)
    outcomes = []
    while not results.empty():
        outcomes.append(results.get_nowait())
    _check(outcomes)
