"""Regression tests of the security review of ``storno_security.mfa``.

1. (MEDIUM) Nothing limited wrong second-factor codes per account: the 5-failure cap is per
   challenge, and every login with the password gave a fresh challenge and 5 more guesses.
   Now a per-user count (``MfaLockout``) is taken before every code is evaluated.
2. (LOW, MFA-4) A wrong passkey answer to an MFA challenge was not counted against it.
3. (PERF) TOTP verification base32-decoded the secret five times per call.
"""

from __future__ import annotations

import base64
import math
from datetime import datetime, timedelta
from typing import Any

import pyotp
import pytest

from storno_security.clock import FrozenClock
from storno_security.errors import (
    InvalidMfaChallengeError,
    InvalidMfaCodeError,
    InvalidPasskeyError,
    MfaError,
    MfaLockedError,
    PasskeyCloneSuspectedError,
    StoreUnavailableError,
)
from storno_security.mfa import (
    BackupCodes,
    FailureCount,
    MfaChallenges,
    MfaFailureStore,
    MfaLockout,
    MfaPolicy,
    PendingChallenge,
    SecondFactorVerifier,
    TotpAuthenticator,
    TotpPolicy,
    VerifiedFactor,
)
from storno_security.stores.memory import (
    MemoryBackupCodeStore,
    MemoryMfaChallengeStore,
    MemoryMfaFailureStore,
    MemoryTotpReplayStore,
)
from tests.mfa.conftest import code_at

LIMIT = 10
POLICY = MfaPolicy.insecure_for_tests()


class Flow:
    """The MFA parts of one application, sharing one per-user failure count."""

    def __init__(self, clock: FrozenClock, policy: MfaPolicy = POLICY) -> None:
        self.clock = clock
        self.failure_store = MemoryMfaFailureStore()
        self.replay = MemoryTotpReplayStore()
        self.code_store = MemoryBackupCodeStore()
        self.challenge_store = MemoryMfaChallengeStore()
        self.lockout = MfaLockout(policy, store=self.failure_store, clock=clock)
        self.totp = TotpAuthenticator(
            policy.totp, replay=self.replay, clock=clock, lockout=self.lockout
        )
        self.backup_codes = BackupCodes(
            policy, store=self.code_store, clock=clock, lockout=self.lockout
        )
        self.factors = SecondFactorVerifier(totp=self.totp, backup_codes=self.backup_codes)
        self.challenges = MfaChallenges(policy, store=self.challenge_store, clock=clock)
        self.secret = pyotp.random_base32()

    def right(self) -> str:
        return code_at(self.secret, self.clock)

    def wrong(self) -> str:
        valid = {code_at(self.secret, self.clock, offset_steps=o) for o in (-1, 0, 1)}
        guess = 0
        while f"{guess:06d}" in valid:
            guess += 1
        return f"{guess:06d}"

    def answer(self, code: str) -> Any:
        def check(pending: PendingChallenge) -> VerifiedFactor:
            return self.factors.verify(
                pending.user_id, method="totp", code=code, totp_secret=self.secret
            )

        return check

    def failures(self, user_id: str) -> int:
        """The user's count (one more attempt is counted to read it, then it is cleared)."""
        now = self.clock.now()
        counted = self.failure_store.record_attempt(
            user_id, now=now, window_ends_at=now + timedelta(hours=1)
        )
        self.failure_store.clear_failures(user_id)
        return counted.failures - 1


@pytest.fixture
def flow(clock: FrozenClock) -> Flow:
    return Flow(clock)


# --- 1. a per-user limit on wrong codes --------------------------------------------------------


@pytest.mark.finding("internal review of mfa")
def test_policy_defaults_are_well_under_nists_cap() -> None:
    policy = MfaPolicy()
    assert policy.max_failures_per_user == LIMIT
    assert policy.failure_window == timedelta(hours=1)
    MfaPolicy(max_failures_per_user=100)
    for bad in (0, 101, True, "10"):
        with pytest.raises((ValueError, TypeError)):
            MfaPolicy(max_failures_per_user=bad)
    for window in (timedelta(seconds=59), timedelta(hours=24, seconds=1)):
        with pytest.raises(ValueError, match="failure_window"):
            MfaPolicy(failure_window=window)


@pytest.mark.finding("internal review of mfa")
def test_the_locked_error_is_an_exported_mfa_error() -> None:
    import storno_security

    assert storno_security.MfaLockedError is MfaLockedError
    assert "MfaLockedError" in storno_security.__all__
    error = MfaLockedError(retry_after=42)
    assert isinstance(error, MfaError)
    assert not isinstance(error, InvalidMfaCodeError)  # the server maps it on its own
    assert (error.reason, error.retry_after) == ("locked", 42)
    with pytest.raises(ValueError, match="retry_after"):
        MfaLockedError(retry_after=0)


@pytest.mark.finding("internal review of mfa")
@pytest.mark.spec("MFA-4")
def test_fresh_challenges_do_not_give_fresh_guesses(flow: Flow) -> None:
    # the attack: the password is known, so every login gives a challenge with 5 more tries
    wrong = flow.wrong()
    outcomes: list[str] = []
    for _ in range(4):  # 4 logins, 20 answers
        issued = flow.challenges.issue("u1")
        for _ in range(POLICY.challenge_max_failures):
            try:
                flow.challenges.complete(issued.token, flow.answer(wrong))
            except InvalidMfaCodeError:
                outcomes.append("wrong")
            except MfaLockedError:
                outcomes.append("locked")
    assert outcomes == ["wrong"] * LIMIT + ["locked"] * (20 - LIMIT)
    # now even the right code is refused, and the refusal costs the challenge nothing
    issued = flow.challenges.issue("u1")
    with pytest.raises(MfaLockedError) as info:
        flow.challenges.complete(issued.token, flow.answer(flow.right()))
    assert info.value.retry_after == 3600
    pending = flow.challenge_store.get_challenge(_hash(issued.token), now=flow.clock.now())
    assert pending is not None
    assert pending.failures == 0


@pytest.mark.finding("internal review of mfa")
def test_a_right_code_is_refused_until_the_window_passes(flow: Flow) -> None:
    for _ in range(LIMIT):
        with pytest.raises(InvalidMfaCodeError):
            flow.totp.verify(flow.wrong(), secret=flow.secret, user_id="u1")
    flow.clock.advance(timedelta(minutes=20, seconds=0.5))
    with pytest.raises(MfaLockedError) as info:
        flow.totp.verify(flow.right(), secret=flow.secret, user_id="u1")
    assert info.value.retry_after == math.ceil(40 * 60 - 0.5)
    flow.clock.advance(timedelta(minutes=40))
    assert flow.totp.verify(flow.right(), secret=flow.secret, user_id="u1").method == "totp"
    assert flow.failures("u1") == 0  # a success clears the count


@pytest.mark.finding("internal review of mfa")
def test_no_code_is_evaluated_once_locked(clock: FrozenClock) -> None:
    evaluated: list[str] = []

    class SpyReplay(MemoryTotpReplayStore):
        def record_step(self, user_id: str, step: int, *, now: datetime, until: datetime) -> bool:
            evaluated.append("totp")
            return super().record_step(user_id, step, now=now, until=until)

    class SpyCodes(MemoryBackupCodeStore):
        def use_code(self, user_id: str, code_id: str, *, now: datetime) -> bool:
            evaluated.append("backup")
            return super().use_code(user_id, code_id, now=now)

    flow = Flow(clock)
    lockout = flow.lockout
    totp = TotpAuthenticator(POLICY.totp, replay=SpyReplay(), clock=clock, lockout=lockout)
    codes = BackupCodes(POLICY, store=SpyCodes(), clock=clock, lockout=lockout)
    issued = codes.generate("u1")
    for _ in range(LIMIT):
        with pytest.raises(InvalidMfaCodeError):
            totp.verify(flow.wrong(), secret=flow.secret, user_id="u1")
    with pytest.raises(MfaLockedError):
        totp.verify(flow.right(), secret=flow.secret, user_id="u1")
    with pytest.raises(MfaLockedError):
        codes.verify(issued.codes[0], user_id="u1")
    assert evaluated == []
    assert codes.remaining("u1") == 10


@pytest.mark.finding("internal review of mfa")
def test_totp_and_backup_codes_share_one_count(flow: Flow) -> None:
    issued = flow.backup_codes.generate("u1")
    wrong_backup = issued.codes[0][:-1] + ("2" if issued.codes[0][-1] != "2" else "3")
    for i in range(LIMIT):
        method, code = ("totp", flow.wrong()) if i % 2 else ("backup_code", wrong_backup)
        with pytest.raises(InvalidMfaCodeError):
            flow.factors.verify("u1", method=method, code=code, totp_secret=flow.secret)
    with pytest.raises(MfaLockedError):
        flow.factors.verify("u1", method="backup_code", code=issued.codes[1], totp_secret=None)


@pytest.mark.finding("internal review of mfa")
def test_step_up_factor_checks_are_counted(flow: Flow) -> None:
    # a step-up starts with SecondFactorVerifier.verify, outside any challenge
    for _ in range(LIMIT):
        with pytest.raises(InvalidMfaCodeError):
            flow.factors.verify("u1", method="totp", code=flow.wrong(), totp_secret=flow.secret)
    with pytest.raises(MfaLockedError):
        flow.factors.verify("u1", method="totp", code=flow.right(), totp_secret=flow.secret)


@pytest.mark.finding("internal review of mfa")
def test_a_success_clears_the_count(flow: Flow) -> None:
    for _ in range(LIMIT - 1):
        with pytest.raises(InvalidMfaCodeError):
            flow.totp.verify(flow.wrong(), secret=flow.secret, user_id="u1")
    flow.totp.verify(flow.right(), secret=flow.secret, user_id="u1")
    flow.clock.advance(30)
    for _ in range(LIMIT):
        with pytest.raises(InvalidMfaCodeError):
            flow.totp.verify(flow.wrong(), secret=flow.secret, user_id="u1")
    with pytest.raises(MfaLockedError):
        flow.totp.verify(flow.wrong(), secret=flow.secret, user_id="u1")


@pytest.mark.finding("internal review of mfa")
def test_a_replayed_code_counts_and_does_not_clear(flow: Flow) -> None:
    code = flow.right()
    flow.totp.verify(code, secret=flow.secret, user_id="u1")
    for _ in range(LIMIT):
        with pytest.raises(InvalidMfaCodeError) as info:
            flow.totp.verify(code, secret=flow.secret, user_id="u1")
        assert info.value.reason == "replayed"
    with pytest.raises(MfaLockedError):
        flow.totp.verify(code, secret=flow.secret, user_id="u1")


@pytest.mark.finding("internal review of mfa")
def test_the_count_is_per_user(flow: Flow) -> None:
    for _ in range(LIMIT):
        with pytest.raises(InvalidMfaCodeError):
            flow.totp.verify(flow.wrong(), secret=flow.secret, user_id="u1")
    assert flow.totp.verify(flow.right(), secret=flow.secret, user_id="u2").method == "totp"


@pytest.mark.finding("internal review of mfa")
def test_malformed_codes_and_missing_factors_are_not_counted(flow: Flow) -> None:
    for _ in range(LIMIT + 5):
        with pytest.raises(InvalidMfaCodeError):
            flow.totp.verify("12345", secret=flow.secret, user_id="u1")
        with pytest.raises(InvalidMfaCodeError):
            flow.totp.verify(flow.wrong(), secret=None, user_id="u1")
        with pytest.raises(InvalidMfaCodeError):
            flow.backup_codes.verify("not-a-code", user_id="u1")
    assert flow.failures("u1") == 0


@pytest.mark.finding("internal review of mfa")
def test_enrolment_is_neither_counted_nor_refused(flow: Flow) -> None:
    for _ in range(LIMIT):
        with pytest.raises(InvalidMfaCodeError):
            flow.totp.verify(flow.wrong(), secret=flow.secret, user_id="u1")
    # confirming a new authenticator checks a code of a secret just made, not the user's factor
    new = pyotp.random_base32()
    with pytest.raises(InvalidMfaCodeError):
        flow.totp.confirm_enrolment("000000", secret=new, user_id="u1")
    flow.totp.confirm_enrolment(code_at(new, flow.clock), secret=new, user_id="u1")
    with pytest.raises(MfaLockedError):  # and it cleared nothing
        flow.totp.verify(flow.right(), secret=flow.secret, user_id="u1")


@pytest.mark.finding("internal review of mfa")
def test_a_failing_failure_store_refuses_the_code(clock: FrozenClock) -> None:
    class Down:
        def record_attempt(
            self, user_id: str, *, now: datetime, window_ends_at: datetime
        ) -> FailureCount:
            raise StoreUnavailableError

        def clear_failures(self, user_id: str) -> None:
            raise StoreUnavailableError

        def purge_expired(self, *, now: datetime) -> int:
            return 0

        def forget_user(self, user_id: str) -> int:
            raise StoreUnavailableError

    assert isinstance(Down(), MfaFailureStore)
    replay = MemoryTotpReplayStore()
    lockout = MfaLockout(POLICY, store=Down(), clock=clock)
    totp = TotpAuthenticator(POLICY.totp, replay=replay, clock=clock, lockout=lockout)
    secret = pyotp.random_base32()
    with pytest.raises(StoreUnavailableError):
        totp.verify(code_at(secret, clock), secret=secret, user_id="u1")
    step = int(clock.now().timestamp()) // 30
    assert replay.record_step("u1", step, now=clock.now(), until=clock.now())  # not evaluated


@pytest.mark.finding("internal review of mfa")
def test_lockout_checks_its_arguments(clock: FrozenClock) -> None:
    with pytest.raises(TypeError):
        MfaLockout(POLICY.totp, store=MemoryMfaFailureStore(), clock=clock)  # type: ignore[arg-type]
    lockout = MfaLockout(store=MemoryMfaFailureStore(), clock=clock)
    assert lockout.policy == MfaPolicy()
    assert "10" in repr(lockout)
    with pytest.raises(ValueError, match="user_id"):
        lockout.count_attempt("")
    with pytest.raises(ValueError, match="user_id"):
        lockout.clear("")
    with pytest.raises(TypeError):
        TotpAuthenticator(replay=MemoryTotpReplayStore(), clock=clock, lockout=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        BackupCodes(store=MemoryBackupCodeStore(), clock=clock, lockout=object())  # type: ignore[arg-type]


@pytest.mark.finding("internal review of mfa")
def test_count_attempt_says_how_many_are_left(clock: FrozenClock) -> None:
    policy = MfaPolicy(max_failures_per_user=3)
    lockout = MfaLockout(policy, store=MemoryMfaFailureStore(), clock=clock)
    assert [lockout.count_attempt("u1") for _ in range(3)] == [2, 1, 0]
    with pytest.raises(MfaLockedError):
        lockout.count_attempt("u1")
    lockout.clear("u1")
    assert lockout.count_attempt("u1") == 2


# --- 2. a wrong passkey answer counts against the challenge -------------------------------------


def _hash(token: str) -> str:
    import hashlib

    return hashlib.sha256(token.encode("ascii")).hexdigest()


@pytest.mark.spec("MFA-4")
@pytest.mark.parametrize(
    "error",
    [
        InvalidPasskeyError(reason="signature"),
        PasskeyCloneSuspectedError(credential_id=b"\x01\x02", user_id="u1"),
    ],
    ids=["invalid", "clone_suspected"],
)
@pytest.mark.finding("internal review of mfa")
def test_a_wrong_passkey_answer_counts_against_the_challenge(
    flow: Flow, error: InvalidPasskeyError
) -> None:
    issued = flow.challenges.issue("u1", has_passkey=True)

    def passkey(pending: PendingChallenge) -> VerifiedFactor:
        raise error

    for left in (4, 3, 2, 1, 0):
        with pytest.raises(type(error)) as info:
            flow.challenges.complete(issued.token, passkey)
        assert info.value is error  # the passkeys capability's error, unchanged
        stored = flow.challenge_store.get_challenge(_hash(issued.token), now=flow.clock.now())
        if left:
            assert stored is not None
            assert stored.failures == 5 - left
        else:
            assert stored is None  # dead after the fifth
    with pytest.raises(InvalidMfaChallengeError):
        flow.challenges.complete(issued.token, flow.answer(flow.right()))


@pytest.mark.finding("internal review of mfa")
def test_a_passkey_answer_after_the_last_failure_is_a_dead_challenge(flow: Flow) -> None:
    issued = flow.challenges.issue("u1", has_passkey=True)

    def passkey(pending: PendingChallenge) -> VerifiedFactor:
        # a concurrent answer used up the last failure while this one was being checked
        for _ in range(5):
            flow.challenge_store.record_failure(_hash(issued.token), now=flow.clock.now())
        raise InvalidPasskeyError(reason="signature")

    with pytest.raises(InvalidMfaChallengeError):
        flow.challenges.complete(issued.token, passkey)


@pytest.mark.parametrize(
    "error",
    [StoreUnavailableError(), MfaLockedError(retry_after=5), RuntimeError("bug")],
    ids=["store", "locked", "other"],
)
@pytest.mark.finding("internal review of mfa")
def test_other_errors_of_the_factor_are_not_counted_and_propagate(
    flow: Flow, error: Exception
) -> None:
    issued = flow.challenges.issue("u1", has_passkey=True)

    def broken(pending: PendingChallenge) -> VerifiedFactor:
        raise error

    with pytest.raises(type(error)) as info:
        flow.challenges.complete(issued.token, broken)
    assert info.value is error
    stored = flow.challenge_store.get_challenge(_hash(issued.token), now=flow.clock.now())
    assert stored is not None
    assert stored.failures == 0


# --- 3. TOTP decodes the secret once per verification --------------------------------------------


@pytest.mark.finding("internal review of mfa")
def test_verify_decodes_the_secret_once(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    real = base64.b32decode

    def counting(s: Any, *args: Any, **kwargs: Any) -> bytes:
        calls.append(s)
        return real(s, *args, **kwargs)

    wrong, right = flow.wrong(), flow.right()
    monkeypatch.setattr(base64, "b32decode", counting)
    with pytest.raises(InvalidMfaCodeError):
        flow.totp.verify(wrong, secret=flow.secret, user_id="u1")
    assert len(calls) == 1
    flow.totp.verify(right, secret=flow.secret, user_id="u1")
    assert len(calls) == 2


@pytest.mark.finding("internal review of mfa")
@pytest.mark.spec("MFA-1")
@pytest.mark.parametrize("digits", [6, 7, 8, 9, 10])
@pytest.mark.parametrize("algorithm", ["SHA1", "SHA256", "SHA512"])
def test_codes_agree_with_pyotp(clock: FrozenClock, digits: int, algorithm: str) -> None:
    import hashlib

    policy = TotpPolicy(algorithm=algorithm, digits=digits)  # type: ignore[arg-type]
    digest = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}
    for n in range(5):
        secret = pyotp.random_base32(32 + 8 * n)
        reference = pyotp.TOTP(secret, digits=digits, digest=digest[algorithm])
        totp = TotpAuthenticator(policy, replay=MemoryTotpReplayStore(), clock=clock, lockout=None)
        for offset in (-1, 0, 1):
            code = reference.at(clock.now(), counter_offset=offset)
            assert totp.verify(code, secret=secret, user_id=f"u{offset}").method == "totp"
        far = reference.at(clock.now(), counter_offset=2)
        near = {reference.at(clock.now(), counter_offset=o) for o in (-1, 0, 1)}
        if far not in near:
            with pytest.raises(InvalidMfaCodeError):
                totp.verify(far, secret=secret, user_id="u-far")
