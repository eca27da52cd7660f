"""MFA login challenges (MFA-4) and the passkey method (MFA-5's part here)."""

from __future__ import annotations

import hashlib
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pyotp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storno_security.clock import FrozenClock
from storno_security.errors import InvalidMfaChallengeError, InvalidMfaCodeError
from storno_security.mfa import (
    IssuedChallenge,
    MfaChallenges,
    PendingChallenge,
    SecondFactorVerifier,
    VerifiedChallenge,
    VerifiedFactor,
)
from storno_security.stores.memory import MemoryMfaChallengeStore
from tests.mfa.conftest import POLICY, code_at


def _totp_answer(
    factors: SecondFactorVerifier, code: str, secret: str
) -> Callable[[PendingChallenge], VerifiedFactor]:
    def check(pending: PendingChallenge) -> VerifiedFactor:
        return factors.verify(pending.user_id, method="totp", code=code, totp_secret=secret)

    return check


@dataclass(frozen=True)
class _Login:
    """A challenge issued to "u1", who has the TOTP ``secret``, and the means to answer it."""

    challenges: MfaChallenges
    factors: SecondFactorVerifier
    clock: FrozenClock
    secret: str
    issued: IssuedChallenge

    def answer(self, code: str) -> VerifiedChallenge:
        """Answer the challenge with the TOTP ``code``."""
        return self.challenges.complete(
            self.issued.token, _totp_answer(self.factors, code, self.secret)
        )

    def answer_right(self) -> VerifiedChallenge:
        """Answer the challenge with the TOTP code of the secret at the clock's now."""
        return self.answer(code_at(self.secret, self.clock))


@pytest.fixture
def login(challenges: MfaChallenges, factors: SecondFactorVerifier, clock: FrozenClock) -> _Login:
    return _Login(challenges, factors, clock, pyotp.random_base32(), challenges.issue("u1"))


def _wrong(pending: PendingChallenge) -> VerifiedFactor:
    raise InvalidMfaCodeError(reason="mismatch")


@pytest.mark.spec("MFA-4")
def test_issue_gives_the_response_payload(challenges: MfaChallenges) -> None:
    issued = challenges.issue("u1")
    assert issued.response() == {
        "mfa_required": True,
        "mfa_token": issued.token,
        "mfa_methods": ["totp", "backup_code"],
    }
    assert issued.token not in repr(issued)


@pytest.mark.spec("MFA-5")
def test_passkey_joins_the_methods_when_the_user_has_one(challenges: MfaChallenges) -> None:
    issued = challenges.issue("u1", has_passkey=True)
    assert issued.response()["mfa_methods"] == ["totp", "backup_code", "passkey"]


@pytest.mark.spec("MFA-5")
def test_a_passkey_answer_completes_a_passkey_challenge(
    challenges: MfaChallenges, clock: FrozenClock
) -> None:
    def passkey(pending: PendingChallenge) -> VerifiedFactor:
        return VerifiedFactor(user_id=pending.user_id, method="passkey", verified_at=clock.now())

    plain = challenges.issue("u1")
    with pytest.raises(InvalidMfaCodeError) as info:
        challenges.complete(plain.token, passkey)
    assert info.value.reason == "method_not_allowed"
    result = challenges.complete(challenges.issue("u1", has_passkey=True).token, passkey)
    assert result.method == "passkey"


@pytest.mark.spec("MFA-4")
def test_token_is_random_and_stored_hashed(
    challenges: MfaChallenges, challenge_store: MemoryMfaChallengeStore, clock: FrozenClock
) -> None:
    tokens = [challenges.issue("u1").token for _ in range(50)]
    assert len(set(tokens)) == 50
    for token in tokens:
        assert len(token) == 43  # 256 bits, base64url
        assert set(token) <= set(string.ascii_letters + string.digits + "-_")
        digest = hashlib.sha256(token.encode()).hexdigest()
        stored = challenge_store.get_challenge(digest, now=clock.now())
        assert stored is not None
        assert stored.user_id == "u1"
        assert challenge_store.get_challenge(token, now=clock.now()) is None


@pytest.mark.spec("MFA-4")
def test_right_totp_completes_and_consumes(login: _Login, clock: FrozenClock) -> None:
    result = login.answer_right()
    assert (result.user_id, result.method) == ("u1", "totp")
    assert result.verified_at == clock.now()
    clock.advance(30)
    with pytest.raises(InvalidMfaChallengeError):
        login.answer_right()


@pytest.mark.spec("MFA-4")
def test_backup_code_completes(
    challenges: MfaChallenges, factors: SecondFactorVerifier, backup_codes: object
) -> None:
    codes = backup_codes.generate("u1")  # type: ignore[attr-defined]
    issued = challenges.issue("u1")
    result = challenges.complete(
        issued.token,
        lambda p: factors.verify(
            p.user_id, method="backup_code", code=codes.codes[3], totp_secret=None
        ),
    )
    assert result.method == "backup_code"
    assert result.factor.backup_codes_left == 9


@pytest.mark.spec("MFA-4")
def test_expires_after_five_minutes(login: _Login, clock: FrozenClock) -> None:
    assert login.issued.expires_at == clock.now() + timedelta(minutes=5)
    clock.advance(timedelta(minutes=5))
    with pytest.raises(InvalidMfaChallengeError):
        login.answer_right()


@pytest.mark.spec("MFA-4")
def test_still_live_just_before_expiry(login: _Login, clock: FrozenClock) -> None:
    clock.advance(timedelta(minutes=5) - timedelta(microseconds=1))
    login.answer_right()


@pytest.mark.spec("MFA-4")
def test_dies_after_five_failures(login: _Login) -> None:
    for left in (4, 3, 2, 1, 0):
        with pytest.raises(InvalidMfaCodeError) as info:
            login.challenges.complete(login.issued.token, _wrong)
        assert info.value.attempts_left == left
    with pytest.raises(InvalidMfaChallengeError):
        login.answer_right()


@pytest.mark.spec("MFA-4")
def test_a_wrong_totp_counts_and_a_right_one_then_passes(login: _Login, clock: FrozenClock) -> None:
    code = code_at(login.secret, clock)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    with pytest.raises(InvalidMfaCodeError) as info:
        login.answer(wrong)
    assert info.value.attempts_left == 4
    login.answer(code)


def test_unknown_method_counts_as_a_failure(
    challenges: MfaChallenges, factors: SecondFactorVerifier
) -> None:
    issued = challenges.issue("u1")
    with pytest.raises(InvalidMfaCodeError) as info:
        challenges.complete(
            issued.token,
            lambda p: factors.verify(p.user_id, method="sms", code="123456", totp_secret=None),
        )
    assert info.value.reason == "unsupported_method"
    assert info.value.attempts_left == 4


@pytest.mark.spec("MFA-4")
def test_another_users_factor_is_refused(challenges: MfaChallenges, clock: FrozenClock) -> None:
    issued = challenges.issue("u1")

    def other(pending: PendingChallenge) -> VerifiedFactor:
        return VerifiedFactor(user_id="u2", method="totp", verified_at=clock.now())

    with pytest.raises(InvalidMfaCodeError) as info:
        challenges.complete(issued.token, other)
    assert info.value.reason == "wrong_user"


@pytest.mark.spec("MFA-4")
@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_other_token_is_rejected(clock: FrozenClock, data: st.DataObject) -> None:
    challenges = MfaChallenges(POLICY, store=MemoryMfaChallengeStore(), clock=clock)
    issued = challenges.issue("u1")
    other = data.draw(
        st.one_of(
            st.text(max_size=80),
            st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=43, max_size=43),
            st.integers(0, 42).flatmap(
                lambda i: st.sampled_from(string.ascii_letters).map(
                    lambda c: issued.token[:i] + c + issued.token[i + 1 :]
                )
            ),
        )
    )
    if other == issued.token:
        return
    with pytest.raises(InvalidMfaChallengeError):
        challenges.complete(other, _wrong)
    # and the real one is untouched: no failure was counted against it
    ok = challenges.complete(
        issued.token,
        lambda p: VerifiedFactor(user_id=p.user_id, method="totp", verified_at=clock.now()),
    )
    assert ok.user_id == "u1"


def test_non_string_token_is_refused(challenges: MfaChallenges) -> None:
    with pytest.raises(InvalidMfaChallengeError):
        challenges.complete(None, _wrong)  # type: ignore[arg-type]


def test_issue_checks_arguments(challenges: MfaChallenges) -> None:
    with pytest.raises(ValueError, match="user_id"):
        challenges.issue("")
    with pytest.raises(TypeError):
        challenges.issue("u1", has_passkey="yes")  # type: ignore[arg-type]


def test_a_verify_factor_that_returns_something_else_is_a_type_error_and_counts_nothing(
    challenges: MfaChallenges, challenge_store: MemoryMfaChallengeStore, clock: FrozenClock
) -> None:
    issued = challenges.issue("u1")
    with pytest.raises(TypeError, match="verify_factor must return a VerifiedFactor"):
        challenges.complete(issued.token, lambda pending: True)  # type: ignore[arg-type,return-value]
    stored = challenge_store.get_challenge(
        hashlib.sha256(issued.token.encode()).hexdigest(), now=clock.now()
    )
    assert stored is not None
    assert stored.failures == 0


@pytest.mark.spec("MFA-4")
def test_a_challenge_completed_meanwhile_by_another_request_is_not_live(
    challenges: MfaChallenges, clock: FrozenClock
) -> None:
    """Two answers to one challenge race: both factors verify, only one completes it."""
    issued = challenges.issue("u1")

    def right(pending: PendingChallenge) -> VerifiedFactor:
        return VerifiedFactor(user_id=pending.user_id, method="totp", verified_at=clock.now())

    def right_but_slower(pending: PendingChallenge) -> VerifiedFactor:
        assert challenges.complete(issued.token, right).user_id == "u1"  # the other request
        return right(pending)

    with pytest.raises(InvalidMfaChallengeError) as info:
        challenges.complete(issued.token, right_but_slower)
    assert info.value.reason == "not_live"


def test_the_mfa_parts_show_their_settings_only(
    challenges: MfaChallenges, factors: SecondFactorVerifier
) -> None:
    assert repr(challenges) == f"MfaChallenges(lifetime={POLICY.challenge_lifetime})"
    assert repr(factors) == (
        f"SecondFactorVerifier(TotpAuthenticator({POLICY.totp!r}), "
        f"BackupCodes(count={POLICY.backup_code_count}))"
    )


@pytest.mark.parametrize("method", ["sms", "email", ""])
def test_a_verified_factor_of_an_unknown_method_cannot_exist(
    method: str, clock: FrozenClock
) -> None:
    with pytest.raises(ValueError, match="method must be one of"):
        VerifiedFactor(user_id="u1", method=method, verified_at=clock.now())  # type: ignore[arg-type]
