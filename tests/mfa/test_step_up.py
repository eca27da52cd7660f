"""Step-up verification (MFA-6) and disabling MFA with a fresh second factor."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pyotp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storno_security.clock import FrozenClock
from storno_security.errors import InvalidStepUpTokenError, StaleSecondFactorError
from storno_security.mfa import (
    ACCOUNT_DELETE,
    API_KEY_CREATE,
    MFA_DISABLE,
    VAULT_READ,
    BackupCodes,
    SecondFactorVerifier,
    StepUpTokens,
    VerifiedFactor,
    disable_mfa,
)
from storno_security.stores.memory import MemoryStepUpStore
from tests.mfa.conftest import POLICY, code_at


def _factor(clock: FrozenClock, user_id: str = "u1") -> VerifiedFactor:
    return VerifiedFactor(user_id=user_id, method="totp", verified_at=clock.now())


@pytest.mark.spec("MFA-6")
def test_fresh_totp_buys_one_action_once(
    step_up: StepUpTokens, factors: SecondFactorVerifier, clock: FrozenClock
) -> None:
    secret = pyotp.random_base32()
    factor = factors.verify("u1", method="totp", code=code_at(secret, clock), totp_secret=secret)
    grant = step_up.issue(factor, action=API_KEY_CREATE)
    assert grant.expires_at == clock.now() + timedelta(seconds=120)
    assert grant.token not in repr(grant)
    verified = step_up.consume(grant.token, user_id="u1", action=API_KEY_CREATE)
    assert (verified.user_id, verified.action, verified.method) == ("u1", "apikey.create", "totp")
    with pytest.raises(InvalidStepUpTokenError):
        step_up.consume(grant.token, user_id="u1", action=API_KEY_CREATE)


@pytest.mark.spec("MFA-6")
def test_token_is_stored_hashed(
    step_up: StepUpTokens, step_up_store: MemoryStepUpStore, clock: FrozenClock
) -> None:
    grant = step_up.issue(_factor(clock), action=VAULT_READ)
    digest = hashlib.sha256(grant.token.encode()).hexdigest()
    assert (
        step_up_store.consume_grant(grant.token, user_id="u1", action=VAULT_READ, now=clock.now())
        is None
    )
    assert (
        step_up_store.consume_grant(digest, user_id="u1", action=VAULT_READ, now=clock.now())
        is not None
    )


@pytest.mark.spec("MFA-6")
def test_valid_for_120_seconds(step_up: StepUpTokens, clock: FrozenClock) -> None:
    early = step_up.issue(_factor(clock), action=VAULT_READ)
    late = step_up.issue(_factor(clock), action=VAULT_READ)
    clock.advance(timedelta(seconds=120) - timedelta(microseconds=1))
    step_up.consume(early.token, user_id="u1", action=VAULT_READ)
    clock.advance(timedelta(microseconds=1))
    with pytest.raises(InvalidStepUpTokenError):
        step_up.consume(late.token, user_id="u1", action=VAULT_READ)


@pytest.mark.spec("MFA-6")
def test_bound_to_the_user_and_the_action(step_up: StepUpTokens, clock: FrozenClock) -> None:
    grant = step_up.issue(_factor(clock), action=ACCOUNT_DELETE)
    with pytest.raises(InvalidStepUpTokenError):
        step_up.consume(grant.token, user_id="u2", action=ACCOUNT_DELETE)
    with pytest.raises(InvalidStepUpTokenError):
        step_up.consume(grant.token, user_id="u1", action=VAULT_READ)
    # a mismatch does not burn the token for its rightful use
    step_up.consume(grant.token, user_id="u1", action=ACCOUNT_DELETE)


@pytest.mark.spec("MFA-6")
def test_needs_a_fresh_factor(step_up: StepUpTokens, clock: FrozenClock) -> None:
    factor = _factor(clock)
    clock.advance(61)
    with pytest.raises(StaleSecondFactorError):
        step_up.issue(factor, action=VAULT_READ)
    future = VerifiedFactor(
        user_id="u1", method="totp", verified_at=clock.now() + timedelta(seconds=1)
    )
    with pytest.raises(StaleSecondFactorError):
        step_up.issue(future, action=VAULT_READ)


@pytest.mark.spec("MFA-6")
@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(other=st.text(max_size=60))
def test_any_other_token_is_rejected(clock: FrozenClock, other: str) -> None:
    tokens = StepUpTokens(POLICY, store=MemoryStepUpStore(), clock=clock)
    grant = tokens.issue(_factor(clock), action=VAULT_READ)
    if other != grant.token:
        with pytest.raises(InvalidStepUpTokenError):
            tokens.consume(other, user_id="u1", action=VAULT_READ)
    tokens.consume(grant.token, user_id="u1", action=VAULT_READ)


@pytest.mark.parametrize("action", ["", "Vault.Read", "vault read", "x" * 65, "1abc"])
def test_action_names_are_checked(step_up: StepUpTokens, clock: FrozenClock, action: str) -> None:
    with pytest.raises(ValueError, match="action"):
        step_up.issue(_factor(clock), action=action)


@pytest.mark.spec("MFA-6")
def test_disabling_mfa_needs_a_fresh_second_factor(
    step_up: StepUpTokens,
    backup_codes: BackupCodes,
    factors: SecondFactorVerifier,
    clock: FrozenClock,
) -> None:
    codes = backup_codes.generate("u1")
    other_action = step_up.issue(_factor(clock), action=VAULT_READ)
    with pytest.raises(InvalidStepUpTokenError):
        disable_mfa(
            "u1", step_up_token=other_action.token, step_up=step_up, backup_codes=backup_codes
        )
    assert backup_codes.remaining("u1") == 10
    factor = factors.verify("u1", method="backup_code", code=codes.codes[0], totp_secret=None)
    grant = step_up.issue(factor, action=MFA_DISABLE)
    verified = disable_mfa(
        "u1", step_up_token=grant.token, step_up=step_up, backup_codes=backup_codes
    )
    assert verified.method == "backup_code"
    assert backup_codes.remaining("u1") == 0


def test_issue_and_consume_check_their_arguments(
    step_up: StepUpTokens, step_up_store: MemoryStepUpStore, clock: FrozenClock
) -> None:
    with pytest.raises(TypeError, match="factor must be a VerifiedFactor"):
        step_up.issue({"user_id": "u1", "method": "totp"}, action=API_KEY_CREATE)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="action must be a str, not int"):
        step_up.issue(_factor(clock), action=7)  # type: ignore[arg-type]
    grant = step_up.issue(_factor(clock), action=API_KEY_CREATE)
    for user_id in ("", None):
        with pytest.raises(ValueError, match="user_id must be a non-empty string"):
            step_up.consume(grant.token, user_id=user_id, action=API_KEY_CREATE)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="action must be a str, not bytes"):
        step_up.consume(grant.token, user_id="u1", action=b"api_key.create")  # type: ignore[arg-type]
    # none of the refused calls used the token
    assert step_up.consume(grant.token, user_id="u1", action=API_KEY_CREATE).user_id == "u1"
    assert repr(step_up) == f"StepUpTokens(lifetime={POLICY.step_up_lifetime})"
