"""MFA "exactly once" across processes (MFA-2, MFA-3, MFA-4, MFA-6).

The approach of ``test_refresh_concurrency.py``: spawned processes x threads, each thread on a
connection of its own, lined up by a multiprocessing barrier, then every outcome is counted.

* one backup code presented 20 times at once (2 processes x 10 threads): exactly one passes;
* 50 wrong answers to one MFA challenge at once (2 x 25): exactly 5 are counted, the other 45
  find the challenge dead, and afterwards even the right answer is refused;
* one valid TOTP code presented 50 times at once for one user: exactly one passes;
* one step-up token used 50 times at once: exactly one use passes.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyotp
import pytest

from storno_security.clock import FrozenClock
from tests.conftest import REDIS_URL, missing_service

NOW = datetime(2026, 3, 1, 12, 0, 7, tzinfo=UTC)
PROCESSES = 2
BARRIER_TIMEOUT = 60.0
RUN_TIMEOUT = 120.0
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def _stores(backend: str, url: str, prefix: str, threads: int) -> tuple[Any, dict[str, Any]]:
    """Build (engine or client, stores) inside a child process."""
    if backend == "redis":
        import redis

        from storno_security.stores import redis as redis_stores

        client = redis.Redis.from_url(url, max_connections=threads + 5)
        return client, {
            "replay": redis_stores.RedisTotpReplayStore(client, prefix=prefix),
            "challenge": redis_stores.RedisMfaChallengeStore(client, prefix=prefix),
            "step_up": redis_stores.RedisStepUpStore(client, prefix=prefix),
        }
    from storno_security.stores import sql

    engine = sql.create_engine(url, pool_size=threads, max_overflow=5)
    return engine, {
        "replay": sql.SqlTotpReplayStore(engine),
        "backup": sql.SqlBackupCodeStore(engine),
        "challenge": sql.SqlMfaChallengeStore(engine),
        "step_up": sql.SqlStepUpStore(engine),
    }


def _operation(kind: str, stores: dict[str, Any], arg: str) -> Any:
    """The one call that every thread makes at once; returns a callable giving an outcome."""
    from storno_security.errors import (
        InvalidMfaChallengeError,
        InvalidMfaCodeError,
        InvalidStepUpTokenError,
    )
    from storno_security.mfa import (
        BackupCodes,
        MfaChallenges,
        MfaPolicy,
        SecondFactorVerifier,
        StepUpTokens,
        TotpAuthenticator,
    )
    from storno_security.stores.memory import MemoryBackupCodeStore

    clock = FrozenClock(NOW)
    policy = MfaPolicy.insecure_for_tests()

    def outcome(call: Any) -> str:
        try:
            call()
        except InvalidMfaCodeError as exc:
            return f"code:{exc.reason}"
        except InvalidMfaChallengeError:
            return "challenge_dead"
        except InvalidStepUpTokenError:
            return "step_up_refused"
        return "passed"

    if kind == "backup":
        codes = BackupCodes(policy, store=stores["backup"], clock=clock)
        return lambda: outcome(lambda: codes.verify(arg, user_id="u-backup"))
    if kind == "totp":
        totp = TotpAuthenticator(policy.totp, replay=stores["replay"], clock=clock)
        return lambda: outcome(lambda: totp.verify(arg, secret=SECRET, user_id="u-totp"))
    if kind == "challenge":
        challenges = MfaChallenges(policy, store=stores["challenge"], clock=clock)
        factors = SecondFactorVerifier(
            totp=TotpAuthenticator(policy.totp, replay=stores["replay"], clock=clock),
            backup_codes=BackupCodes(policy, store=MemoryBackupCodeStore(), clock=clock),
        )
        token, wrong = arg.split(" ")

        def answer(pending: Any) -> Any:
            return factors.verify(pending.user_id, method="totp", code=wrong, totp_secret=SECRET)

        return lambda: outcome(lambda: challenges.complete(token, answer))
    step_up = StepUpTokens(policy, store=stores["step_up"], clock=clock)
    return lambda: outcome(lambda: step_up.consume(arg, user_id="u-step", action="vault.read"))


def _child(
    kind: str,
    backend: str,
    url: str,
    prefix: str,
    arg: str,
    threads: int,
    barrier: Any,
    results: Any,
) -> None:
    handle, stores = _stores(backend, url, prefix, threads)
    operation = _operation(kind, stores, arg)
    warm = threading.Barrier(threads)

    def worker() -> None:
        try:
            if backend != "redis":
                connection = handle.raw_connection()  # hold a pooled connection, as REF-2 does
                try:
                    warm.wait(timeout=BARRIER_TIMEOUT)
                finally:
                    connection.close()
            barrier.wait(timeout=BARRIER_TIMEOUT)
            results.put(operation())
        except BaseException as exc:
            barrier.abort()
            results.put(f"error: {type(exc).__name__}: {exc}")

    try:
        workers = [threading.Thread(target=worker) for _ in range(threads)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
    finally:
        if backend == "redis":
            handle.close()
        else:
            handle.dispose()


def _hammer(kind: str, backend: str, url: str, prefix: str, arg: str, threads: int) -> Counter[str]:
    ctx = multiprocessing.get_context("spawn")
    total = PROCESSES * threads
    barrier = ctx.Barrier(total)
    results = ctx.Queue()
    processes = [
        ctx.Process(
            target=_child,
            args=(kind, backend, url, prefix, arg, threads, barrier, results),
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
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, Any]]:
    """(backend, url, stores built in this process) for the parametrised backend."""
    backend = str(request.param)
    prefix = request.getfixturevalue("redis_prefix")
    if backend == "redis":
        request.getfixturevalue("redis_client")  # skips (or fails in CI) without a server
        url = REDIS_URL
    elif backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'mfa-concurrency.db'}"
    else:
        found = request.getfixturevalue("sql_urls")[backend]
        if found is None:
            missing_service(backend, "no server on its port")
        url = found
    if backend != "redis":
        from storno_security.stores.sql import create_engine, create_schema

        engine = create_engine(url)
        create_schema(engine)
        engine.dispose()
    handle, stores = _stores(backend, url, prefix, 2)
    yield backend, url, stores
    if backend == "redis":
        handle.close()
    else:
        handle.dispose()


SQL = ["sqlite", "postgresql", "mariadb"]
ALL = [*SQL, "redis"]


@pytest.mark.spec("MFA-3")
@pytest.mark.slow
@pytest.mark.parametrize("backend_url", SQL, indirect=True)
def test_one_backup_code_passes_once_among_20(
    backend_url: tuple[str, str, Any], redis_prefix: str
) -> None:
    from storno_security.mfa import BackupCodes, MfaPolicy

    backend, url, stores = backend_url
    codes = BackupCodes(
        MfaPolicy.insecure_for_tests(), store=stores["backup"], clock=FrozenClock(NOW)
    )
    issued = codes.generate("u-backup")
    outcomes = _hammer("backup", backend, url, redis_prefix, issued.codes[4], threads=10)
    assert outcomes["passed"] == 1, outcomes
    assert sum(outcomes.values()) == 20
    assert set(outcomes) <= {"passed", "code:used", "code:mismatch"}, outcomes
    assert codes.remaining("u-backup") == 9


@pytest.mark.spec("MFA-4")
@pytest.mark.slow
@pytest.mark.parametrize("backend_url", ALL, indirect=True)
def test_fifty_wrong_answers_count_exactly_five(
    backend_url: tuple[str, str, Any], redis_prefix: str
) -> None:
    from storno_security.errors import InvalidMfaChallengeError
    from storno_security.mfa import MfaChallenges, MfaPolicy, TotpAuthenticator

    backend, url, stores = backend_url
    clock = FrozenClock(NOW)
    policy = MfaPolicy.insecure_for_tests()
    challenges = MfaChallenges(policy, store=stores["challenge"], clock=clock)
    issued = challenges.issue("u-challenge")
    right = pyotp.TOTP(SECRET).at(NOW)
    wrong = f"{(int(right) + 500_000) % 1_000_000:06d}"
    outcomes = _hammer(
        "challenge", backend, url, redis_prefix, f"{issued.token} {wrong}", threads=25
    )
    assert outcomes == {"code:mismatch": 5, "challenge_dead": 45}, outcomes
    totp = TotpAuthenticator(policy.totp, replay=stores["replay"], clock=clock)
    with pytest.raises(InvalidMfaChallengeError):
        challenges.complete(
            issued.token, lambda p: totp.verify(right, secret=SECRET, user_id=p.user_id)
        )


@pytest.mark.spec("MFA-2")
@pytest.mark.slow
@pytest.mark.parametrize("backend_url", ALL, indirect=True)
def test_one_totp_code_passes_once_among_50(
    backend_url: tuple[str, str, Any], redis_prefix: str
) -> None:
    backend, url, stores = backend_url
    user_step = stores["replay"]
    code = pyotp.TOTP(SECRET).at(NOW)
    outcomes = _hammer("totp", backend, url, redis_prefix, code, threads=25)
    assert outcomes == {"passed": 1, "code:replayed": 49}, outcomes
    step = int(NOW.timestamp()) // 30
    assert user_step.record_step("u-totp", step, now=NOW, until=NOW.replace(hour=13)) is False


@pytest.mark.spec("MFA-6")
@pytest.mark.slow
@pytest.mark.parametrize("backend_url", ALL, indirect=True)
def test_one_step_up_token_passes_once_among_50(
    backend_url: tuple[str, str, Any], redis_prefix: str
) -> None:
    from storno_security.mfa import MfaPolicy, StepUpTokens, VerifiedFactor

    backend, url, stores = backend_url
    clock = FrozenClock(NOW)
    tokens = StepUpTokens(MfaPolicy.insecure_for_tests(), store=stores["step_up"], clock=clock)
    grant = tokens.issue(
        VerifiedFactor(user_id="u-step", method="totp", verified_at=NOW), action="vault.read"
    )
    outcomes = _hammer("step_up", backend, url, redis_prefix, grant.token, threads=25)
    assert outcomes == {"passed": 1, "step_up_refused": 49}, outcomes
