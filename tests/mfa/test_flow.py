"""The whole MFA flow of docs/mfa.md, end to end, and in-process races on the memory stores."""

from __future__ import annotations

from collections import Counter

import pyotp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storno_security.clock import FrozenClock
from storno_security.errors import (
    InvalidMfaChallengeError,
    InvalidMfaCodeError,
    StornoSecurityError,
)
from storno_security.mfa import (
    BACKUP_CODE_ALPHABET,
    MFA_DISABLE,
    BackupCodes,
    MfaChallenges,
    MfaPolicy,
    SecondFactorVerifier,
    StepUpTokens,
    TotpAuthenticator,
    disable_mfa,
)
from storno_security.passwords import PasswordPolicy
from storno_security.stores.memory import MemoryBackupCodeStore
from tests._concurrency import at_once
from tests.mfa.conftest import POLICY


@pytest.mark.spec("MFA-4")
def test_enrol_login_step_up_disable(
    clock: FrozenClock,
    totp: TotpAuthenticator,
    backup_codes: BackupCodes,
    factors: SecondFactorVerifier,
    challenges: MfaChallenges,
    step_up: StepUpTokens,
) -> None:
    enrolment = totp.begin_enrolment(account_name="ana@example.eu", issuer="Storno")
    app = pyotp.TOTP(enrolment.secret)
    totp.confirm_enrolment(app.at(clock.now()), secret=enrolment.secret, user_id="user-1")
    recovery = backup_codes.generate("user-1")

    # the enrolment code cannot log in (MFA-2)
    issued = challenges.issue("user-1")
    with pytest.raises(InvalidMfaCodeError) as info:
        challenges.complete(
            issued.token,
            lambda p: factors.verify(
                p.user_id, method="totp", code=app.at(clock.now()), totp_secret=enrolment.secret
            ),
        )
    assert info.value.reason == "replayed"
    assert info.value.attempts_left == 4

    clock.advance(30)
    result = challenges.complete(
        issued.token,
        lambda p: factors.verify(
            p.user_id, method="totp", code=app.at(clock.now()), totp_secret=enrolment.secret
        ),
    )
    assert (result.user_id, result.method) == ("user-1", "totp")

    factor = factors.verify(
        "user-1", method="backup_code", code=recovery.codes[0], totp_secret=None
    )
    grant = step_up.issue(factor, action=MFA_DISABLE)
    disable_mfa("user-1", step_up_token=grant.token, step_up=step_up, backup_codes=backup_codes)
    assert backup_codes.remaining("user-1") == 0
    with pytest.raises(InvalidMfaChallengeError):  # consumed
        challenges.complete(issued.token, lambda p: factor)


@pytest.mark.spec("MFA-3")
def test_threads_racing_for_one_backup_code(clock: FrozenClock) -> None:
    codes = BackupCodes(POLICY, store=MemoryBackupCodeStore(), clock=clock, lockout=None)
    code = codes.generate("u1").codes[0]

    def use() -> str:
        try:
            codes.verify(code, user_id="u1")
        except InvalidMfaCodeError:
            return "refused"
        return "passed"

    outcomes = at_once([use] * 20)
    assert Counter(outcomes) == {"passed": 1, "refused": 19}


@pytest.mark.spec("MFA-3")
@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(0, 11), replacement=st.sampled_from(BACKUP_CODE_ALPHABET))
def test_any_tampered_code_is_rejected(clock: FrozenClock, position: int, replacement: str) -> None:
    codes = BackupCodes(POLICY, store=MemoryBackupCodeStore(), clock=clock, lockout=None)
    code = codes.generate("u1").codes[0].replace("-", "")
    tampered = code[:position] + replacement + code[position + 1 :]
    if tampered != code:
        with pytest.raises(InvalidMfaCodeError):
            codes.verify(tampered, user_id="u1")
    assert codes.verify(code, user_id="u1").backup_codes_left == 9


def test_policy_refuses_a_hashing_policy_longer_than_a_code() -> None:
    with pytest.raises(ValueError, match="min_length"):
        MfaPolicy(backup_code_hashing=PasswordPolicy(min_length=13))


def test_every_mfa_error_is_a_library_error() -> None:
    for error in (InvalidMfaCodeError, InvalidMfaChallengeError):
        assert issubclass(error, StornoSecurityError)
