"""Regression tests for flaws found in review (PW-4 legacy-cost timing, PW-5 NFKC length)."""

from __future__ import annotations

import bcrypt
import pytest

from storno_security.errors import InvalidPasswordError, PasswordPolicyError
from storno_security.passwords import PasswordHasher, PasswordPolicy
from storno_security.passwords import hasher as hasher_module

POLICY = PasswordPolicy(cost=7, insecure_low_cost=True)


def _work_units(patch: pytest.MonkeyPatch) -> list[int]:
    """Record 2**cost for every bcrypt check: the work each one does, independent of load."""
    units: list[int] = []
    real_checkpw = bcrypt.checkpw

    def spy(password: bytes, hashed: bytes) -> bool:
        units.append(2 ** int(hashed.split(b"$")[2]))
        return bool(real_checkpw(password, hashed))

    patch.setattr(hasher_module.bcrypt, "checkpw", spy)
    return units


def _legacy_hash(password: str, *, cost: int, prefix: str = "2y") -> str:
    digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost, prefix=b"2b"))
    return digest.decode().replace("$2b$", f"${prefix}$", 1)


@pytest.mark.finding("internal review of passwords")
@pytest.mark.spec("PW-4")
@pytest.mark.parametrize("legacy_cost", [4, 5, 6])
def test_a_cheaper_legacy_hash_costs_what_an_unknown_user_costs(
    monkeypatch: pytest.MonkeyPatch, legacy_cost: int
) -> None:
    hasher = PasswordHasher(POLICY)
    stored = _legacy_hash("correct horse", cost=legacy_cost)
    units = _work_units(monkeypatch)

    with pytest.raises(InvalidPasswordError):
        hasher.verify("wrong password", None)
    unknown = sum(units)
    units.clear()
    with pytest.raises(InvalidPasswordError):
        hasher.verify("wrong password", stored)
    known_wrong = sum(units)
    units.clear()
    result = hasher.verify("correct horse", stored)
    known_right = sum(units)

    assert unknown == 2**POLICY.cost
    assert known_wrong == unknown
    assert known_right == unknown
    assert result.new_hash is not None  # and the login rehashes it (PW-3)


@pytest.mark.finding("internal review of passwords")
@pytest.mark.spec("PW-4")
def test_a_hash_at_the_policy_cost_is_checked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    hasher = PasswordHasher(POLICY)
    stored = hasher.hash("correct horse")
    units = _work_units(monkeypatch)
    with pytest.raises(InvalidPasswordError):
        hasher.verify("wrong password", stored)
    assert units == [2**POLICY.cost]


@pytest.mark.spec("PW-5")
@pytest.mark.parametrize(
    "password",
    [
        "\ufdfa",  # one code point; NFKC makes 18
        "\u338f\u338f\u338f",  # three code points; NFKC makes 6
        "\ufb03\ufb03\ufb03\ufb03",  # four ligatures 'ffi'; NFKC makes 12
    ],
)
@pytest.mark.finding("internal review of passwords")
def test_minimum_length_counts_the_characters_typed(password: str) -> None:
    with pytest.raises(PasswordPolicyError) as caught:
        PasswordHasher(POLICY).check_new_password(password)
    assert caught.value.reason == "too_short"


@pytest.mark.finding("internal review of passwords")
@pytest.mark.spec("PW-5")
def test_minimum_length_counts_composed_characters_once() -> None:
    # 'e' + combining acute is one character after NFKC: seven of them are too short.
    with pytest.raises(PasswordPolicyError):
        PasswordHasher(POLICY).check_new_password("e\u0301" * 7)
    PasswordHasher(POLICY).check_new_password("e\u0301" * 8)
