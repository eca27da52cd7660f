"""Fixtures of the MFA tests: the MFA parts over memory stores and a frozen clock."""

from __future__ import annotations

import pyotp
import pytest

from storno_security.clock import FrozenClock
from storno_security.mfa import (
    BackupCodes,
    MfaChallenges,
    MfaPolicy,
    SecondFactorVerifier,
    StepUpTokens,
    TotpAuthenticator,
)
from storno_security.stores.memory import (
    MemoryBackupCodeStore,
    MemoryMfaChallengeStore,
    MemoryStepUpStore,
    MemoryTotpReplayStore,
)

#: bcrypt cost 4 for backup codes: the explicit, greppable insecure-for-tests preset.
POLICY = MfaPolicy.insecure_for_tests()


def code_at(secret: str, clock: FrozenClock, *, offset_steps: int = 0) -> str:
    """The TOTP code an authenticator app shows at ``clock`` (plus ``offset_steps`` steps)."""
    return str(pyotp.TOTP(secret).at(clock.now(), counter_offset=offset_steps))


@pytest.fixture
def replay_store() -> MemoryTotpReplayStore:
    return MemoryTotpReplayStore()


@pytest.fixture
def totp(clock: FrozenClock, replay_store: MemoryTotpReplayStore) -> TotpAuthenticator:
    return TotpAuthenticator(POLICY.totp, replay=replay_store, clock=clock, lockout=None)


@pytest.fixture
def code_store() -> MemoryBackupCodeStore:
    return MemoryBackupCodeStore()


@pytest.fixture
def backup_codes(clock: FrozenClock, code_store: MemoryBackupCodeStore) -> BackupCodes:
    return BackupCodes(POLICY, store=code_store, clock=clock, lockout=None)


@pytest.fixture
def factors(totp: TotpAuthenticator, backup_codes: BackupCodes) -> SecondFactorVerifier:
    return SecondFactorVerifier(totp=totp, backup_codes=backup_codes)


@pytest.fixture
def challenge_store() -> MemoryMfaChallengeStore:
    return MemoryMfaChallengeStore()


@pytest.fixture
def challenges(clock: FrozenClock, challenge_store: MemoryMfaChallengeStore) -> MfaChallenges:
    return MfaChallenges(POLICY, store=challenge_store, clock=clock)


@pytest.fixture
def step_up_store() -> MemoryStepUpStore:
    return MemoryStepUpStore()


@pytest.fixture
def step_up(clock: FrozenClock, step_up_store: MemoryStepUpStore) -> StepUpTokens:
    return StepUpTokens(POLICY, store=step_up_store, clock=clock)
