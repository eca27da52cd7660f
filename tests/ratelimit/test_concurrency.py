"""RL-1 and RL-4 across processes: 2 processes x 10 threads hammer the login policy (5/min) of one
client through Redis, lined up by a multiprocessing barrier (the harness in
``tests/_concurrency.py``); exactly 5 get through per window.

Time is not slept through: each volley runs at a fixed instant given to a frozen clock, 0 s,
60 s (the first five have just left the window), 119.999 s (the second five are still in it)
and 120 s. The memory storage gets the same volleys from 20 threads of one process.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from storno_security.clock import FrozenClock
from storno_security.ratelimit import RateLimiter, RateLimitStorage, spec_policies
from storno_security.stores.memory import MemoryRateLimitStorage
from tests._concurrency import Outcome, StoreSpec, hammer, hammer_threads, per_round
from tests.conftest import REDIS_URL

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PROCESSES = 2
THREADS = 10
HITTERS = PROCESSES * THREADS
#: (instant of the volley in ms after NOW, how many of the 20 hits may pass)
VOLLEYS = ((0, 5), (60_000, 5), (119_999, 0), (120_000, 5))
IP = "203.0.113.50"


def _redis_storage(spec: StoreSpec, client: Any) -> RateLimitStorage:
    from storno_security.stores.redis import RedisRateLimitStorage

    return RedisRateLimitStorage(client, prefix=spec.prefix)


def _hit(storage: RateLimitStorage, volley: int) -> str:
    """One login hit at the volley's instant: "allowed" or the name of the error raised."""
    offset_ms, _ = VOLLEYS[volley]
    clock = FrozenClock(NOW + timedelta(milliseconds=offset_ms))
    limiter = RateLimiter(storage, clock=clock, policies=spec_policies())
    try:
        limiter.hit("login", IP)
    except Exception as exc:
        return type(exc).__name__
    return "allowed"


def _check(outcomes: list[Outcome]) -> None:
    for volley, (_, passing) in enumerate(VOLLEYS):
        counted = per_round(outcomes, volley)
        expected = {"allowed": passing, "RateLimitExceededError": HITTERS - passing}
        assert counted == {k: v for k, v in expected.items() if v}, (volley, counted)


@pytest.mark.spec("RL-1")
@pytest.mark.spec("RL-4")
@pytest.mark.slow
def test_exactly_five_logins_per_window_across_processes(
    redis_client: Any, redis_prefix: str
) -> None:
    prefix = f"{redis_prefix}conc{secrets.token_hex(4)}:"
    outcomes = hammer(
        StoreSpec("redis", REDIS_URL, prefix),
        _redis_storage,
        _hit,
        processes=PROCESSES,
        threads=THREADS,
        rounds=len(VOLLEYS),
    )
    _check(outcomes)
    # the log never holds more than the limit
    assert redis_client.llen(f"{prefix}rl:sw:login:{IP}") == 5


@pytest.mark.spec("RL-1")
def test_exactly_five_logins_per_window_across_threads_in_memory() -> None:
    outcomes = hammer_threads(MemoryRateLimitStorage(), _hit, threads=HITTERS, rounds=len(VOLLEYS))
    _check(outcomes)


# --- the harness itself: bounded, taking turns on a shared server, clear when it fails ----------


def _fail_first(ticket: Any, round_no: int) -> str:
    """The first caller of round 0 fails; the others go on to round 1 and its broken barrier."""
    if round_no == 0 and ticket.acquire(blocking=False):
        raise RuntimeError("boom")
    return "ok"


def test_harness_failure_names_the_root_cause_first() -> None:
    import threading

    with pytest.raises(AssertionError) as failed:
        hammer_threads(threading.Lock(), _fail_first, threads=10, rounds=3)
    message = str(failed.value)
    first, cause = message.splitlines()[:2]
    assert first.startswith("1 caller(s) failed, ")
    assert first.endswith(" more stopped at the broken barrier")
    assert cause == "  round 0: RuntimeError: boom"
    assert "ran out of connections" not in message


def _full_server(ticket: Any, round_no: int) -> str:
    if ticket.acquire(blocking=False):
        raise OSError("connection failed: FATAL:  sorry, too many clients already")
    return "ok"


def test_harness_says_when_the_server_ran_out_of_connections() -> None:
    import threading

    with pytest.raises(AssertionError, match="ran out of connections"):
        hammer_threads(threading.Lock(), _full_server, threads=4, rounds=2)


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_harness_refuses_a_run_over_the_connection_cap(backend: str) -> None:
    # refused before any process starts or any connection is made (nothing listens on port 1)
    spec = StoreSpec(backend, f"{backend}://nobody@127.0.0.1:1/none")
    with pytest.raises(ValueError, match="cap per run is 60"):
        hammer(spec, _redis_storage, _hit, processes=3, threads=25)


def test_harness_child_pools_have_no_overflow(tmp_path: Any) -> None:
    # processes x threads is all a run holds: the children's pools may not grow past it
    spec = StoreSpec("sqlite", f"sqlite:///{tmp_path / 'pool.db'}")
    engine = spec.connect(25)
    try:
        assert engine.pool.size() == 25
        assert engine.pool._max_overflow == 0
    finally:
        engine.dispose()


def test_harness_connects_patiently_while_the_server_is_full() -> None:
    from tests._concurrency import patiently

    attempts = []

    def connect() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise OSError("FATAL: sorry, too many clients already")
        return "connection"

    assert patiently(connect, patience=30) == "connection"
    assert len(attempts) == 3

    def refused() -> str:
        attempts.append(1)
        raise OSError("connection refused")

    attempts.clear()
    with pytest.raises(OSError, match="refused"):
        patiently(refused, patience=30)
    assert len(attempts) == 1  # other errors are not retried


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_harness_runs_take_turns_on_a_server(
    backend: str, request: pytest.FixtureRequest, tmp_path: Any
) -> None:
    from tests._concurrency import server_slot, store_spec

    spec = store_spec(backend, request, tmp_path)
    with (
        server_slot(spec),
        pytest.raises(AssertionError, match="no concurrency-test slot"),
        server_slot(spec, timeout=1),
    ):
        pass
    with server_slot(spec, timeout=1):  # released
        pass
