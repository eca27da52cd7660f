"""TOTP (MFA-1) and its replay guard (MFA-2)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import pyotp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storno_security.clock import FrozenClock
from storno_security.errors import InvalidMfaCodeError
from storno_security.mfa import TotpAuthenticator, TotpPolicy
from storno_security.stores.memory import MemoryTotpReplayStore
from tests.mfa.conftest import POLICY, code_at

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "rfc6238.json").read_text())[
    "cases"
]


def _vector_id(case: dict[str, Any]) -> str:
    return f"{case['algorithm']}-{case['time']}"


@pytest.mark.spec("MFA-1")
@pytest.mark.parametrize("case", VECTORS, ids=_vector_id)
def test_rfc6238_appendix_b_vectors(case: dict[str, Any]) -> None:
    # The RFC's vectors are 8 digits; the policy takes them, defaults stay at 6.
    policy = TotpPolicy(algorithm=case["algorithm"], digits=case["digits"], period=case["period"])
    clock = FrozenClock(datetime.fromtimestamp(case["time"], tz=UTC))
    totp = TotpAuthenticator(policy, replay=MemoryTotpReplayStore(), clock=clock, lockout=None)
    secret = base64.b32encode(case["secret_ascii"].encode("ascii")).decode("ascii")
    factor = totp.verify(case["totp"], secret=secret, user_id="rfc")
    assert factor.totp_step == int(case["step_hex"], 16)
    assert factor.method == "totp"
    assert factor.verified_at == clock.now()


@pytest.mark.spec("MFA-1")
def test_default_policy_is_the_spec() -> None:
    policy = TotpPolicy()
    assert (policy.algorithm, policy.digits, policy.period, policy.window) == ("SHA1", 6, 30, 1)
    assert policy.secret_bytes * 8 == 160


@pytest.mark.parametrize(
    "kwargs",
    [
        {"algorithm": "MD5"},
        {"digits": 5},
        {"digits": 11},
        {"window": 3},
        {"secret_bytes": 10},
        {"period": 0},
    ],
)
def test_policy_refuses_weak_or_odd_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        TotpPolicy(**kwargs)


def test_policy_refuses_wrong_types() -> None:
    with pytest.raises(TypeError):
        TotpPolicy(digits=True)


@pytest.mark.spec("MFA-1")
def test_enrolment_secret_and_uri(totp: TotpAuthenticator) -> None:
    enrolment = totp.begin_enrolment(account_name="ana@example.eu", issuer="Storno Demo")
    assert len(enrolment.secret) == 32  # 160 bits of base32, unpadded
    assert len(base64.b32decode(enrolment.secret)) == 20
    uri = urlparse(enrolment.provisioning_uri)
    assert uri.scheme == "otpauth"
    assert uri.netloc == "totp"
    assert unquote(uri.path) == "/Storno Demo:ana@example.eu"
    query = parse_qs(uri.query)
    assert query["secret"] == [enrolment.secret]
    assert query["issuer"] == ["Storno Demo"]
    assert enrolment.secret not in repr(enrolment)
    assert "otpauth" not in repr(enrolment)
    # a real authenticator app reads the same secret out of the URI
    assert pyotp.parse_uri(enrolment.provisioning_uri).secret == enrolment.secret


def test_enrolment_secrets_differ(totp: TotpAuthenticator) -> None:
    secrets = {totp.begin_enrolment(account_name="a", issuer="b").secret for _ in range(20)}
    assert len(secrets) == 20


@pytest.mark.parametrize("label", ["", "   ", "a\nb", "x" * 256])
def test_enrolment_refuses_bad_labels(totp: TotpAuthenticator, label: str) -> None:
    with pytest.raises(ValueError, match="account_name"):
        totp.begin_enrolment(account_name=label, issuer="Storno")
    with pytest.raises(ValueError, match="issuer"):
        totp.begin_enrolment(account_name="ana", issuer=label)


@pytest.mark.spec("MFA-1")
def test_enabling_needs_one_valid_code(totp: TotpAuthenticator, clock: FrozenClock) -> None:
    enrolment = totp.begin_enrolment(account_name="ana", issuer="Storno")
    wrong = f"{(int(code_at(enrolment.secret, clock)) + 1) % 1_000_000:06d}"
    with pytest.raises(InvalidMfaCodeError):
        totp.confirm_enrolment(wrong, secret=enrolment.secret, user_id="u1")
    factor = totp.confirm_enrolment(
        code_at(enrolment.secret, clock), secret=enrolment.secret, user_id="u1"
    )
    assert factor.user_id == "u1"


@pytest.mark.spec("MFA-1")
@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_one_step_either_side_is_accepted(
    totp: TotpAuthenticator, clock: FrozenClock, offset: int
) -> None:
    secret = pyotp.random_base32()
    factor = totp.verify(code_at(secret, clock, offset_steps=offset), secret=secret, user_id="u")
    assert factor.totp_step == int(clock.now().timestamp()) // 30 + offset


def _secret_without_collision(
    clock: FrozenClock, offset: int, window: tuple[int, ...] = (-1, 0, 1)
) -> str:
    """A fixed secret whose code ``offset`` steps away differs from the codes of the steps in
    ``window`` (a random one collides now and then, which no test may leave to chance)."""
    for n in range(100):
        secret = base64.b32encode(n.to_bytes(20, "big")).decode("ascii")
        codes = {code_at(secret, clock, offset_steps=o) for o in window}
        if code_at(secret, clock, offset_steps=offset) not in codes:
            return secret
    raise AssertionError("no secret without a collision")  # pragma: no cover


@pytest.mark.spec("MFA-1")
@pytest.mark.parametrize("offset", [-3, -2, 2, 3])
def test_steps_outside_the_window_are_refused(
    totp: TotpAuthenticator, clock: FrozenClock, offset: int
) -> None:
    secret = _secret_without_collision(clock, offset)
    code = code_at(secret, clock, offset_steps=offset)
    with pytest.raises(InvalidMfaCodeError) as info:
        totp.verify(code, secret=secret, user_id="u")
    assert info.value.reason == "mismatch"


@pytest.mark.spec("MFA-1")
def test_code_expires_with_the_clock(totp: TotpAuthenticator, clock: FrozenClock) -> None:
    secret = _secret_without_collision(clock, 0, window=(1, 2, 3))
    code = code_at(secret, clock)
    clock.advance(60)  # two steps later: outside ±1
    with pytest.raises(InvalidMfaCodeError):
        totp.verify(code, secret=secret, user_id="u")


@pytest.mark.spec("MFA-2")
def test_accepted_code_is_never_accepted_again(totp: TotpAuthenticator, clock: FrozenClock) -> None:
    secret = pyotp.random_base32()
    code = code_at(secret, clock)
    totp.verify(code, secret=secret, user_id="u")
    for _ in range(3):
        with pytest.raises(InvalidMfaCodeError) as info:
            totp.verify(code, secret=secret, user_id="u")
        assert info.value.reason == "replayed"
        clock.advance(29)  # still inside the window for the first two tries


@pytest.mark.spec("MFA-2")
def test_earlier_step_after_a_later_one_is_refused(
    totp: TotpAuthenticator, clock: FrozenClock
) -> None:
    secret = pyotp.random_base32()
    later = code_at(secret, clock, offset_steps=1)
    earlier = code_at(secret, clock, offset_steps=-1)
    totp.verify(later, secret=secret, user_id="u")
    with pytest.raises(InvalidMfaCodeError):
        totp.verify(earlier, secret=secret, user_id="u")


@pytest.mark.spec("MFA-2")
def test_replay_guard_is_per_user(totp: TotpAuthenticator, clock: FrozenClock) -> None:
    secret = pyotp.random_base32()
    code = code_at(secret, clock)
    totp.verify(code, secret=secret, user_id="u1")
    totp.verify(code, secret=secret, user_id="u2")


@pytest.mark.spec("MFA-2")
def test_next_step_is_accepted_after_the_clock_moves(
    totp: TotpAuthenticator, clock: FrozenClock
) -> None:
    secret = pyotp.random_base32()
    totp.verify(code_at(secret, clock), secret=secret, user_id="u")
    clock.advance(30)
    totp.verify(code_at(secret, clock), secret=secret, user_id="u")


def test_separators_are_ignored(totp: TotpAuthenticator, clock: FrozenClock) -> None:
    secret = pyotp.random_base32()
    code = code_at(secret, clock)
    totp.verify(f"{code[:3]} {code[3:]}", secret=secret, user_id="u")


@pytest.mark.parametrize(
    "code", ["", "12345", "1234567", "12a456", "١٢٣٤٥٦", "123456\n", "1" * 100, "+12345"]
)
def test_malformed_codes_are_refused(
    totp: TotpAuthenticator, code: str, replay_store: MemoryTotpReplayStore
) -> None:
    with pytest.raises(InvalidMfaCodeError) as info:
        totp.verify(code, secret=pyotp.random_base32(), user_id="u")
    assert info.value.reason == "malformed"
    assert str(info.value) == "invalid verification code"


def test_no_secret_is_refused_like_a_wrong_code(totp: TotpAuthenticator) -> None:
    with pytest.raises(InvalidMfaCodeError) as info:
        totp.verify("123456", secret=None, user_id="u")
    assert info.value.reason == "not_enrolled"


@pytest.mark.parametrize(
    "secret", ["", "not base32!", "ABCDEFGH", "abcdefghijklmnopqrstuvwxyz234567"]
)
def test_bad_stored_secret_is_a_caller_error(totp: TotpAuthenticator, secret: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        totp.verify("123456", secret=secret, user_id="u")


def test_wrong_types_are_type_errors(totp: TotpAuthenticator) -> None:
    with pytest.raises(TypeError):
        totp.verify(123456, secret=pyotp.random_base32(), user_id="u")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        totp.verify("123456", secret=b"ABCD", user_id="u")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="user_id"):
        totp.verify("123456", secret=pyotp.random_base32(), user_id="")


@pytest.mark.spec("MFA-1")
@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(guess=st.text(alphabet="0123456789", min_size=6, max_size=6))
def test_any_other_code_is_rejected(clock: FrozenClock, guess: str) -> None:
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    valid = {code_at(secret, clock, offset_steps=o) for o in (-1, 0, 1)}
    totp = TotpAuthenticator(replay=MemoryTotpReplayStore(), clock=clock, lockout=None)
    if guess in valid:
        assert totp.verify(guess, secret=secret, user_id="u").method == "totp"
    else:
        with pytest.raises(InvalidMfaCodeError):
            totp.verify(guess, secret=secret, user_id="u")


def test_replay_store_failure_refuses_the_code(clock: FrozenClock) -> None:
    from storno_security.errors import StoreUnavailableError

    class Down:
        def record_step(self, user_id: str, step: int, *, now: datetime, until: datetime) -> bool:
            raise StoreUnavailableError

        def purge_expired(self, *, now: datetime) -> int:
            return 0

    totp = TotpAuthenticator(replay=Down(), clock=clock, lockout=None)
    secret = pyotp.random_base32()
    with pytest.raises(StoreUnavailableError):
        totp.verify(code_at(secret, clock), secret=secret, user_id="u")


def test_replay_record_lives_until_the_window_ends(clock: FrozenClock) -> None:
    seen: list[tuple[int, datetime]] = []

    class Spy(MemoryTotpReplayStore):
        def record_step(self, user_id: str, step: int, *, now: datetime, until: datetime) -> bool:
            seen.append((step, until))
            return super().record_step(user_id, step, now=now, until=until)

    totp = TotpAuthenticator(replay=Spy(), clock=clock, lockout=None)
    secret = pyotp.random_base32()
    totp.verify(code_at(secret, clock), secret=secret, user_id="u")
    ((step, until),) = seen
    # the end of the ±1 window, plus one step of margin for clock skew between hosts
    assert until == datetime.fromtimestamp((step + 3) * 30, tz=UTC)


# --- exact edges (each kills a mutant that the tests above let live) --------------------------


def _authenticator(clock: FrozenClock, **kwargs: Any) -> TotpAuthenticator:
    return TotpAuthenticator(replay=MemoryTotpReplayStore(), clock=clock, lockout=None, **kwargs)


@pytest.mark.spec("MFA-1")
def test_a_secret_of_exactly_128_bits_is_accepted_and_120_refused(clock: FrozenClock) -> None:
    totp = _authenticator(clock)
    secret = base64.b32encode(bytes(range(16))).decode("ascii")
    assert totp.verify(code_at(secret, clock), secret=secret, user_id="u").method == "totp"
    short = base64.b32encode(bytes(range(15))).decode("ascii")
    with pytest.raises(ValueError, match="at least 128 bits"):
        totp.verify(code_at(short, clock), secret=short, user_id="u")


def test_arguments_of_the_wrong_type_are_type_errors(clock: FrozenClock) -> None:
    with pytest.raises(TypeError, match="policy must be a TotpPolicy"):
        _authenticator(clock, policy=object())
    with pytest.raises(TypeError, match="lockout must be an MfaLockout"):
        TotpAuthenticator(replay=MemoryTotpReplayStore(), clock=clock, lockout=object())  # type: ignore[arg-type]
    totp = _authenticator(clock)
    secret = base64.b32encode(bytes(range(20))).decode("ascii")
    with pytest.raises(TypeError, match="secret must be a str"):
        totp.verify("123456", secret=secret.encode(), user_id="u")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="code must be a str"):
        totp.verify(123456, secret=secret, user_id="u")  # type: ignore[arg-type]


@pytest.mark.spec("MFA-1")
def test_a_code_may_carry_separators_up_to_64_characters(clock: FrozenClock) -> None:
    totp = _authenticator(clock)
    secret = base64.b32encode(bytes(range(20))).decode("ascii")
    code = code_at(secret, clock)
    assert totp.verify(code + " " * (64 - len(code)), secret=secret, user_id="u").totp_step
    with pytest.raises(InvalidMfaCodeError) as caught:
        totp.verify(code + " " * (65 - len(code)), secret=secret, user_id="v")
    assert caught.value.reason == "malformed"


@pytest.mark.spec("MFA-1")
def test_the_first_step_of_the_epoch_verifies() -> None:
    clock = FrozenClock(datetime(1970, 1, 1, 0, 0, 10, tzinfo=UTC))
    totp = _authenticator(clock)
    secret = base64.b32encode(bytes(range(20))).decode("ascii")
    assert totp.verify(code_at(secret, clock), secret=secret, user_id="u").totp_step == 0


@pytest.mark.parametrize("secret", ["A" * 33, "ABC", "AAAAAA"])
def test_a_base32_secret_of_an_impossible_length_is_refused(
    totp: TotpAuthenticator, secret: str
) -> None:
    # Upper-case base32 characters, but no whole number of bytes: not a secret we made.
    with pytest.raises(ValueError, match="secret must be base32"):
        totp.verify("123456", secret=secret, user_id="u1")


def test_enrolment_labels_must_be_text(totp: TotpAuthenticator) -> None:
    with pytest.raises(TypeError, match="account_name must be a str, not int"):
        totp.begin_enrolment(account_name=42, issuer="Storno")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="issuer must be a str, not bytes"):
        totp.begin_enrolment(account_name="ana@example.eu", issuer=b"Storno")  # type: ignore[arg-type]
    assert repr(totp) == f"TotpAuthenticator({POLICY.totp!r})"


def test_a_label_of_exactly_255_characters_is_taken_and_256_refused(
    totp: TotpAuthenticator,
) -> None:
    enrolment = totp.begin_enrolment(account_name="a" * 255, issuer="i" * 255)
    assert (enrolment.account_name, enrolment.issuer) == ("a" * 255, "i" * 255)
    assert unquote(urlparse(enrolment.provisioning_uri).path).endswith("a" * 255)
    with pytest.raises(ValueError, match="longer than 255"):
        totp.begin_enrolment(account_name="a" * 256, issuer="Storno")


def test_an_enrolment_is_built_by_keyword_only(totp: TotpAuthenticator) -> None:
    from storno_security.mfa import TotpEnrolment

    enrolment = totp.begin_enrolment(account_name="ana@example.eu", issuer="Storno")
    with pytest.raises(TypeError):
        TotpEnrolment(  # type: ignore[misc]
            enrolment.secret, enrolment.provisioning_uri, enrolment.account_name, enrolment.issuer
        )
