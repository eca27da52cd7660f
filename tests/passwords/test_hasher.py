"""PW-1..PW-5: bcrypt hashing without truncation, PHP compatibility, rehash, equal timing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storno_security.errors import (
    InvalidPasswordError,
    PasswordPolicyError,
    UnsupportedHashError,
)
from storno_security.passwords import PasswordHasher, PasswordPolicy
from storno_security.passwords import hasher as hasher_module

VECTORS = json.loads(
    (Path(__file__).parent.parent / "vectors" / "php_password_hash.json").read_text()
)
FAST = PasswordPolicy.insecure_for_tests()


@pytest.fixture
def hasher() -> PasswordHasher:
    return PasswordHasher(FAST)


@pytest.mark.spec("PW-1")
def test_default_policy_is_cost_12() -> None:
    assert PasswordPolicy().cost == 12
    assert PasswordHasher().policy.cost == 12


@pytest.mark.spec("PW-1")
def test_hash_is_bcrypt_at_policy_cost() -> None:
    hasher = PasswordHasher(PasswordPolicy(cost=10))
    stored = hasher.hash("a reasonable passphrase")
    assert stored.startswith("$bcrypt-hmac-sha256$v1$2b$10$")
    hasher.verify("a reasonable passphrase", stored)


@pytest.mark.spec("PW-1")
@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["call"][:30])
def test_php_password_default_hashes_verify(vector: dict[str, str]) -> None:
    hasher = PasswordHasher(PasswordPolicy(cost=10))
    result = hasher.verify(vector["password"], vector["hash"])
    # an older scheme: the login flow gets a replacement in the new form (PW-3)
    assert result.needs_rehash
    assert result.new_hash is not None
    assert hasher.needs_rehash(result.new_hash) is False
    hasher.verify(vector["password"], result.new_hash)
    with pytest.raises(InvalidPasswordError):
        hasher.verify(vector["password"] + "x", vector["hash"])


@pytest.mark.spec("PW-1")
@pytest.mark.parametrize("prefix", ["2a", "2b", "2y"])
def test_plain_bcrypt_prefixes_verify(prefix: str) -> None:
    raw = bcrypt.hashpw(b"plain old bcrypt", bcrypt.gensalt(4)).decode()
    stored = f"${prefix}$" + raw[4:]
    PasswordHasher(FAST).verify("plain old bcrypt", stored)


@pytest.mark.spec("PW-2")
def test_differences_after_byte_72_count(hasher: PasswordHasher) -> None:
    base = "p" * 72
    stored = hasher.hash(base + "-one")
    hasher.verify(base + "-one", stored)
    with pytest.raises(InvalidPasswordError):
        hasher.verify(base + "-two", stored)
    with pytest.raises(InvalidPasswordError):
        hasher.verify(base, stored)


@pytest.mark.spec("PW-2")
def test_legacy_hash_never_matches_by_truncation() -> None:
    hasher = PasswordHasher(FAST)
    vector = VECTORS["truncated"]
    # PHP truncated this password to 72 bytes; the full password must not match...
    with pytest.raises(InvalidPasswordError) as info:
        hasher.verify(vector["password"], vector["hash"])
    assert info.value.reason == "legacy_hash_over_72_bytes"
    # ...nor another password with the same first 72 bytes
    with pytest.raises(InvalidPasswordError):
        hasher.verify(vector["password"][:72] + "SUFFIX-TWO", vector["hash"])


@pytest.mark.spec("PW-2")
def test_1024_bytes_accepted_1025_refused(hasher: PasswordHasher) -> None:
    longest = "é" * 512  # 1024 UTF-8 bytes
    stored = hasher.hash(longest)
    hasher.verify(longest, stored)
    with pytest.raises(PasswordPolicyError, match="at most 1024 bytes") as info:
        hasher.hash(longest + "x")
    assert info.value.reason == "too_long"
    with pytest.raises(PasswordPolicyError):
        hasher.verify(longest + "x", stored)


@pytest.mark.spec("PW-2")
@settings(max_examples=25, deadline=None)
@given(
    prefix=st.text(min_size=72, max_size=200).filter(lambda s: len(s.encode()) <= 900),
    a=st.text(min_size=1, max_size=20),
    b=st.text(min_size=1, max_size=20),
)
def test_long_passwords_differing_late_never_cross_verify(prefix: str, a: str, b: str) -> None:
    hasher = PasswordHasher(FAST)
    import unicodedata

    if unicodedata.normalize("NFKC", prefix + a) == unicodedata.normalize("NFKC", prefix + b):
        return
    stored = hasher.hash(prefix + a)
    with pytest.raises(InvalidPasswordError):
        hasher.verify(prefix + b, stored)


@settings(max_examples=20, deadline=None)
@given(password=st.text(min_size=8, max_size=100))
def test_round_trip(password: str) -> None:
    hasher = PasswordHasher(FAST)
    stored = hasher.hash(password)
    assert hasher.verify(password, stored).needs_rehash is False


def test_nfkc_equivalent_forms_verify(hasher: PasswordHasher) -> None:
    composed = "caf\u00e9-latte-2026"
    decomposed = "cafe\u0301-latte-2026"
    hasher.verify(decomposed, hasher.hash(composed))


@pytest.mark.spec("PW-3")
def test_needs_rehash_on_cost_increase() -> None:
    old = PasswordHasher(PasswordPolicy(cost=10))
    new = PasswordHasher(PasswordPolicy(cost=11))
    stored = old.hash("upgrade me please")
    assert old.needs_rehash(stored) is False
    assert new.needs_rehash(stored) is True
    result = new.verify("upgrade me please", stored)
    assert result.new_hash is not None
    assert "$2b$11$" in result.new_hash
    assert new.needs_rehash(result.new_hash) is False
    # a higher cost than the policy is not "below policy"
    assert old.needs_rehash(result.new_hash) is False


@pytest.mark.spec("PW-3")
def test_needs_rehash_for_plain_bcrypt() -> None:
    hasher = PasswordHasher(PasswordPolicy(cost=10))
    assert hasher.needs_rehash(VECTORS["vectors"][0]["hash"]) is True


def _spy_on_checkpw(patch: pytest.MonkeyPatch) -> list[bytes]:
    """Record the hash of every bcrypt check (the check itself still runs)."""
    calls: list[bytes] = []
    real_checkpw = bcrypt.checkpw

    def spy(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return bool(real_checkpw(password, hashed))

    patch.setattr(hasher_module.bcrypt, "checkpw", spy)
    return calls


@pytest.mark.spec("PW-4")
def test_unknown_user_costs_one_policy_cost_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    hasher = PasswordHasher(PasswordPolicy(cost=10))
    stored = hasher.hash("the real password")
    calls = _spy_on_checkpw(monkeypatch)
    with pytest.raises(InvalidPasswordError) as wrong:
        hasher.verify("a wrong password", stored)
    with pytest.raises(InvalidPasswordError) as unknown:
        hasher.verify("a wrong password", None)
    assert len(calls) == 2
    # same scheme, same cost: the same work
    assert calls[0][:7] == calls[1][:7] == b"$2b$10$"
    # and the same error message (ACC-1)
    assert str(wrong.value) == str(unknown.value)


@pytest.mark.spec("PW-4")
def test_dummy_hash_follows_the_policy_cost() -> None:
    hasher = PasswordHasher(PasswordPolicy(cost=11))
    with pytest.MonkeyPatch.context() as patch:
        calls = _spy_on_checkpw(patch)
        patch.setattr(hasher_module.bcrypt, "hashpw", None)  # no hashing on this path at all
        with pytest.raises(InvalidPasswordError):
            hasher.verify("whatever it is", None)
    assert len(calls) == 1
    assert calls[0].startswith(b"$2b$11$")


@pytest.mark.spec("PW-5")
def test_minimum_length_8_no_composition_rules(hasher: PasswordHasher) -> None:
    with pytest.raises(PasswordPolicyError, match="at least 8") as info:
        hasher.hash("1234567")
    assert info.value.reason == "too_short"
    hasher.hash("12345678")
    hasher.hash("aaaaaaaa")  # no composition rules
    hasher.hash("ääääääää")  # characters, not bytes


def test_policy_refuses_low_cost_without_the_flag() -> None:
    with pytest.raises(ValueError, match="insecure_low_cost"):
        PasswordPolicy(cost=4)
    with pytest.raises(ValueError, match="between 4 and 31"):
        PasswordPolicy(cost=40)
    with pytest.raises(TypeError):
        PasswordPolicy(cost="12")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "not a hash",
        "$2b$12$short",
        "$bcrypt-hmac-sha256$v1$2y$04$" + "a" * 53,
        "$2b$99$" + "a" * 53,
        b"\xff\xfe",
        12345,
    ],
)
def test_malformed_stored_hash_is_our_error(hasher: PasswordHasher, stored: Any) -> None:
    with pytest.raises(UnsupportedHashError):
        hasher.verify("some password", stored)
    with pytest.raises(UnsupportedHashError):
        hasher.needs_rehash(stored)


def test_non_str_password_is_type_error(hasher: PasswordHasher) -> None:
    with pytest.raises(TypeError):
        hasher.hash(b"bytes password")  # type: ignore[arg-type]


def test_lone_surrogate_is_refused(hasher: PasswordHasher) -> None:
    with pytest.raises(PasswordPolicyError):
        hasher.hash("abcdefgh\ud800")


def test_secrets_not_in_repr(hasher: PasswordHasher) -> None:
    stored = hasher.hash("do not print me")
    result = PasswordHasher(PasswordPolicy(cost=5, insecure_low_cost=True)).verify(
        "do not print me", stored
    )
    assert result.new_hash is not None
    assert result.new_hash not in repr(result)


# --- exact edges (each kills a mutant that the tests above let live) --------------------------


@pytest.mark.spec("PW-1")
def test_the_cost_bounds_are_inclusive() -> None:
    assert PasswordPolicy(cost=31).cost == 31
    assert PasswordPolicy(cost=4, insecure_low_cost=True).cost == 4
    for cost in (3, 32):
        with pytest.raises(ValueError, match="between 4 and 31"):
            PasswordPolicy(cost=cost, insecure_low_cost=True)
    with pytest.raises(TypeError, match="cost must be an int"):
        PasswordPolicy(cost=True)  # type: ignore[arg-type]


@pytest.mark.spec("PW-5")
def test_the_length_bounds_are_inclusive() -> None:
    assert PasswordPolicy(min_length=1024).min_length == 1024
    assert PasswordPolicy(max_bytes=4096).max_bytes == 4096
    with pytest.raises(ValueError, match="min_length"):
        PasswordPolicy(min_length=1025)
    with pytest.raises(ValueError, match="max_bytes"):
        PasswordPolicy(max_bytes=4097)


@pytest.mark.spec("PW-3")
def test_a_stored_hash_of_cost_31_is_read_and_32_is_refused(hasher: PasswordHasher) -> None:
    body = "." * 53
    # read, not refused (and due for a rehash: plain bcrypt is not the prehashed scheme)
    assert hasher.needs_rehash(f"$2b$31${body}") is True
    with pytest.raises(UnsupportedHashError) as caught:
        hasher.needs_rehash(f"$2b$32${body}")
    assert caught.value.reason == "bad_cost"


def test_the_hasher_takes_only_a_password_policy_and_shows_it() -> None:
    with pytest.raises(TypeError, match="policy must be a PasswordPolicy"):
        PasswordHasher({"cost": 12})  # type: ignore[arg-type]
    policy = PasswordPolicy(cost=5, insecure_low_cost=True)
    assert repr(PasswordHasher(policy)) == f"PasswordHasher({policy!r})"


@pytest.mark.spec("PW-5")
def test_the_lower_length_bounds_are_inclusive_and_the_policy_takes_keywords() -> None:
    assert PasswordPolicy(min_length=1).min_length == 1
    assert PasswordPolicy(max_bytes=8).max_bytes == 8
    with pytest.raises(ValueError, match="min_length"):
        PasswordPolicy(min_length=0)
    with pytest.raises(ValueError, match="max_bytes"):
        PasswordPolicy(max_bytes=7)
    with pytest.raises(TypeError):
        PasswordPolicy(False, 12)  # type: ignore[misc]


@pytest.mark.spec("PW-2")
def test_a_legacy_hash_matches_exactly_72_bytes_and_refuses_73() -> None:
    hasher = PasswordHasher(FAST)
    exact = "x" * 72
    legacy = bcrypt.hashpw(exact.encode(), bcrypt.gensalt(rounds=4)).decode()
    assert hasher.verify(exact, legacy).new_hash is not None  # matched, and due for a rehash
    with pytest.raises(InvalidPasswordError) as caught:
        hasher.verify(exact + "y", legacy)
    assert caught.value.reason == "legacy_hash_over_72_bytes"
