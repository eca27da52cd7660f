"""MFA "exactly once" across processes (MFA-2, MFA-3, MFA-4, MFA-6).

The harness of ``tests/_concurrency.py``: spawned processes x threads, each thread on a
connection of its own, lined up by a multiprocessing barrier, then every outcome is counted.

* one backup code presented 20 times at once (2 processes x 10 threads): exactly one passes;
* 50 wrong answers to one MFA challenge at once (2 x 25): exactly 5 are counted, the other 45
  find the challenge dead, and afterwards even the right answer is refused;
* one valid TOTP code presented 50 times at once for one user: exactly one passes;
* one step-up token used 50 times at once: exactly one use passes.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import pyotp
import pytest

from storno_security.clock import FrozenClock
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
    VerifiedFactor,
)
from storno_security.stores.memory import MemoryBackupCodeStore
from tests._concurrency import StoreSpec, hammer, per_round, store_spec

NOW = datetime(2026, 3, 1, 12, 0, 7, tzinfo=UTC)
PROCESSES = 2
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def _stores(spec: StoreSpec, handle: Any) -> dict[str, Any]:
    """The stores over ``handle`` (an engine or a Redis client), by kind."""
    if spec.is_redis:
        from storno_security.stores import redis as redis_stores

        return {
            "replay": redis_stores.RedisTotpReplayStore(handle, prefix=spec.prefix),
            "challenge": redis_stores.RedisMfaChallengeStore(handle, prefix=spec.prefix),
            "step_up": redis_stores.RedisStepUpStore(handle, prefix=spec.prefix),
        }
    from storno_security.stores import sql

    return {
        "replay": sql.SqlTotpReplayStore(handle),
        "backup": sql.SqlBackupCodeStore(handle),
        "challenge": sql.SqlMfaChallengeStore(handle),
        "step_up": sql.SqlStepUpStore(handle),
    }


def _operation(kind: str, arg: str, spec: StoreSpec, handle: Any) -> Any:
    """The one call that every thread makes at once; returns a callable giving an outcome."""
    stores = _stores(spec, handle)
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
        codes = BackupCodes(policy, store=stores["backup"], clock=clock, lockout=None)
        return lambda: outcome(lambda: codes.verify(arg, user_id="u-backup"))
    if kind == "totp":
        totp = TotpAuthenticator(policy.totp, replay=stores["replay"], clock=clock, lockout=None)
        return lambda: outcome(lambda: totp.verify(arg, secret=SECRET, user_id="u-totp"))
    if kind == "challenge":
        challenges = MfaChallenges(policy, store=stores["challenge"], clock=clock)
        factors = SecondFactorVerifier(
            totp=TotpAuthenticator(policy.totp, replay=stores["replay"], clock=clock, lockout=None),
            backup_codes=BackupCodes(
                policy, store=MemoryBackupCodeStore(), clock=clock, lockout=None
            ),
        )
        token, wrong = arg.split(" ")

        def answer(pending: Any) -> Any:
            return factors.verify(pending.user_id, method="totp", code=wrong, totp_secret=SECRET)

        return lambda: outcome(lambda: challenges.complete(token, answer))
    step_up = StepUpTokens(policy, store=stores["step_up"], clock=clock)
    return lambda: outcome(lambda: step_up.consume(arg, user_id="u-step", action="vault.read"))


def _run(operation: Any, round_no: int) -> str:
    return str(operation())


def _hammer(kind: str, spec: StoreSpec, arg: str, threads: int) -> Counter[str]:
    outcomes = hammer(
        spec,
        functools.partial(_operation, kind, arg),
        _run,
        processes=PROCESSES,
        threads=threads,
    )
    return per_round(outcomes, 0)


class _Backend(NamedTuple):
    """A parametrised backend: its spec, the stores built in this process, a clock, a policy."""

    spec: StoreSpec
    stores: dict[str, Any]
    clock: FrozenClock
    policy: MfaPolicy


@pytest.fixture
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[_Backend]:
    """The MFA stores over the parametrised backend, at ``NOW``."""
    spec = store_spec(str(request.param), request, tmp_path)
    with spec.connected() as handle:
        yield _Backend(
            spec, _stores(spec, handle), FrozenClock(NOW), MfaPolicy.insecure_for_tests()
        )


SQL = ["sqlite", "postgresql", "mariadb"]
ALL = [*SQL, "redis"]
pytestmark = pytest.mark.slow


@pytest.mark.spec("MFA-3")
@pytest.mark.parametrize("backend", SQL, indirect=True)
def test_one_backup_code_passes_once_among_20(backend: _Backend) -> None:
    codes = BackupCodes(
        backend.policy, store=backend.stores["backup"], clock=backend.clock, lockout=None
    )
    issued = codes.generate("u-backup")
    outcomes = _hammer("backup", backend.spec, issued.codes[4], threads=10)
    assert outcomes["passed"] == 1, outcomes
    assert sum(outcomes.values()) == 20
    assert set(outcomes) <= {"passed", "code:used", "code:mismatch"}, outcomes
    assert codes.remaining("u-backup") == 9


@pytest.mark.spec("MFA-4")
@pytest.mark.parametrize("backend", ALL, indirect=True)
def test_fifty_wrong_answers_count_exactly_five(backend: _Backend) -> None:
    policy, clock = backend.policy, backend.clock
    challenges = MfaChallenges(policy, store=backend.stores["challenge"], clock=clock)
    issued = challenges.issue("u-challenge")
    right = pyotp.TOTP(SECRET).at(NOW)
    wrong = f"{(int(right) + 500_000) % 1_000_000:06d}"
    outcomes = _hammer("challenge", backend.spec, f"{issued.token} {wrong}", threads=25)
    assert outcomes == {"code:mismatch": 5, "challenge_dead": 45}, outcomes
    totp = TotpAuthenticator(
        policy.totp, replay=backend.stores["replay"], clock=clock, lockout=None
    )
    with pytest.raises(InvalidMfaChallengeError):
        challenges.complete(
            issued.token, lambda p: totp.verify(right, secret=SECRET, user_id=p.user_id)
        )


@pytest.mark.spec("MFA-2")
@pytest.mark.parametrize("backend", ALL, indirect=True)
def test_one_totp_code_passes_once_among_50(backend: _Backend) -> None:
    user_step = backend.stores["replay"]
    code = pyotp.TOTP(SECRET).at(NOW)
    outcomes = _hammer("totp", backend.spec, code, threads=25)
    assert outcomes == {"passed": 1, "code:replayed": 49}, outcomes
    step = int(NOW.timestamp()) // 30
    assert user_step.record_step("u-totp", step, now=NOW, until=NOW.replace(hour=13)) is False


@pytest.mark.spec("MFA-6")
@pytest.mark.parametrize("backend", ALL, indirect=True)
def test_one_step_up_token_passes_once_among_50(backend: _Backend) -> None:
    tokens = StepUpTokens(backend.policy, store=backend.stores["step_up"], clock=backend.clock)
    grant = tokens.issue(
        VerifiedFactor(user_id="u-step", method="totp", verified_at=NOW), action="vault.read"
    )
    outcomes = _hammer("step_up", backend.spec, grant.token, threads=25)
    assert outcomes == {"passed": 1, "step_up_refused": 49}, outcomes
