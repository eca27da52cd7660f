"""Backup codes (MFA-3)."""

from __future__ import annotations

import re

import bcrypt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storno_security.clock import FrozenClock
from storno_security.errors import CorruptRecordError, InvalidMfaCodeError
from storno_security.mfa import BACKUP_CODE_ALPHABET, BackupCodes, MfaPolicy, StoredBackupCode
from storno_security.passwords import PasswordPolicy
from storno_security.stores.memory import MemoryBackupCodeStore
from tests.mfa.conftest import POLICY

CODE_RE = re.compile(
    rf"[{BACKUP_CODE_ALPHABET}]{{4}}-[{BACKUP_CODE_ALPHABET}]{{4}}-[{BACKUP_CODE_ALPHABET}]{{4}}"
)


@pytest.mark.spec("MFA-3")
def test_a_set_is_ten_readable_codes(backup_codes: BackupCodes) -> None:
    result = backup_codes.generate("u1")
    assert len(result.codes) == 10
    assert len(set(result.codes)) == 10
    assert all(CODE_RE.fullmatch(code) for code in result.codes)
    assert len({code[0] for code in result.codes}) == 10  # hints distinct within the set
    assert not set("01ILO") & set("".join(result.codes))
    assert backup_codes.remaining("u1") == 10
    assert all(code not in repr(result) for code in result.codes)


def test_default_policy_is_the_spec() -> None:
    policy = MfaPolicy()
    assert policy.backup_code_count == 10
    assert policy.backup_code_hashing.cost >= 10
    assert not policy.backup_code_hashing.insecure_low_cost
    assert POLICY.backup_code_hashing.insecure_low_cost  # tests only, and it says so


@pytest.mark.spec("MFA-3")
def test_codes_are_stored_bcrypt_hashed_only(
    backup_codes: BackupCodes, code_store: MemoryBackupCodeStore
) -> None:
    result = backup_codes.generate("u1")
    stored = [code_store.find_code("u1", code[0]) for code in result.codes]
    assert all(isinstance(s, StoredBackupCode) for s in stored)
    for code, entry in zip(result.codes, stored, strict=True):
        assert entry is not None
        assert entry.code_hash.startswith("$bcrypt-hmac-sha256$v1$2b$04$")
        assert code not in entry.code_hash
        assert code.replace("-", "") not in entry.code_hash
        assert entry.code_hash not in repr(entry)


@pytest.mark.spec("MFA-3")
def test_each_code_works_once(backup_codes: BackupCodes) -> None:
    result = backup_codes.generate("u1")
    for left, code in enumerate(reversed(result.codes)):
        factor = backup_codes.verify(code, user_id="u1")
        assert factor.method == "backup_code"
        assert factor.backup_codes_left == 9 - left
        with pytest.raises(InvalidMfaCodeError):
            backup_codes.verify(code, user_id="u1")
    assert backup_codes.remaining("u1") == 0


@pytest.mark.spec("MFA-3")
def test_regenerating_replaces_the_whole_set(backup_codes: BackupCodes) -> None:
    old = backup_codes.generate("u1")
    backup_codes.verify(old.codes[0], user_id="u1")
    new = backup_codes.generate("u1")
    assert backup_codes.remaining("u1") == 10
    for code in old.codes[1:]:
        with pytest.raises(InvalidMfaCodeError):
            backup_codes.verify(code, user_id="u1")
    backup_codes.verify(new.codes[0], user_id="u1")


def test_codes_are_bound_to_their_user(backup_codes: BackupCodes) -> None:
    result = backup_codes.generate("u1")
    backup_codes.generate("u2")
    with pytest.raises(InvalidMfaCodeError):
        backup_codes.verify(result.codes[0], user_id="u2")
    backup_codes.verify(result.codes[0], user_id="u1")


def test_input_is_forgiving_about_case_and_separators(backup_codes: BackupCodes) -> None:
    result = backup_codes.generate("u1")
    backup_codes.verify(result.codes[0].lower(), user_id="u1")
    backup_codes.verify(result.codes[1].replace("-", " "), user_id="u1")
    backup_codes.verify(result.codes[2].replace("-", ""), user_id="u1")


@pytest.mark.parametrize("code", ["", "ABCD", "ABCD-EFGH-JKM0", "ABCD-EFGH-JKMNP", "x" * 100])
def test_malformed_codes_are_refused_without_hashing(
    backup_codes: BackupCodes, code: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup_codes.generate("u1")
    calls: list[bytes] = []
    monkeypatch.setattr(bcrypt, "checkpw", lambda pw, h: calls.append(pw) or False)
    with pytest.raises(InvalidMfaCodeError) as info:
        backup_codes.verify(code, user_id="u1")
    assert info.value.reason == "malformed"
    assert not calls


def _count_checkpw(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    calls: list[bytes] = []
    real = bcrypt.checkpw

    def spy(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", spy)
    return calls


@pytest.mark.spec("MFA-3")
def test_one_bcrypt_per_attempt_known_hint_or_not(
    backup_codes: BackupCodes, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = backup_codes.generate("u1")
    hints = {code[0] for code in result.codes}
    unused_hint = next(ch for ch in BACKUP_CODE_ALPHABET if ch not in hints)
    calls = _count_checkpw(monkeypatch)
    backup_codes.verify(result.codes[0], user_id="u1")
    assert len(calls) == 1
    wrong_same_hint = result.codes[1][:-1] + ("2" if result.codes[1][-1] != "2" else "3")
    with pytest.raises(InvalidMfaCodeError):
        backup_codes.verify(wrong_same_hint, user_id="u1")
    assert len(calls) == 2
    with pytest.raises(InvalidMfaCodeError):
        backup_codes.verify(unused_hint + result.codes[1][1:], user_id="u1")
    assert len(calls) == 3  # the dummy hash: an unknown hint costs the same
    with pytest.raises(InvalidMfaCodeError):
        backup_codes.verify(result.codes[1], user_id="nobody")
    assert len(calls) == 4


@pytest.mark.spec("MFA-3")
@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(guess=st.text(alphabet=BACKUP_CODE_ALPHABET, min_size=12, max_size=12))
def test_any_other_code_is_rejected(clock: FrozenClock, guess: str) -> None:
    codes = BackupCodes(POLICY, store=MemoryBackupCodeStore(), clock=clock, lockout=None)
    issued = codes.generate("u1")
    if guess in {c.replace("-", "") for c in issued.codes}:
        return  # 2^-54: hypothesis will not find it
    with pytest.raises(InvalidMfaCodeError):
        codes.verify(guess, user_id="u1")
    assert codes.remaining("u1") == 10


def test_corrupt_stored_hash(clock: FrozenClock) -> None:
    store = MemoryBackupCodeStore()
    store.replace_codes("u1", [StoredBackupCode("id1", "A", "not a hash")], now=clock.now())
    codes = BackupCodes(POLICY, store=store, clock=clock, lockout=None)
    with pytest.raises(CorruptRecordError):
        codes.verify("AAAA-AAAA-AAAA", user_id="u1")


def test_delete_removes_every_code(backup_codes: BackupCodes) -> None:
    result = backup_codes.generate("u1")
    backup_codes.delete("u1")
    assert backup_codes.remaining("u1") == 0
    with pytest.raises(InvalidMfaCodeError):
        backup_codes.verify(result.codes[0], user_id="u1")


def test_policy_needs_the_explicit_flag_for_a_low_cost() -> None:
    with pytest.raises(ValueError, match="insecure_low_cost"):
        MfaPolicy(backup_code_hashing=PasswordPolicy(cost=4))
    with pytest.raises(ValueError, match="backup_code_count"):
        MfaPolicy(backup_code_count=3)


def test_arguments_are_checked(backup_codes: BackupCodes) -> None:
    with pytest.raises(ValueError, match="user_id"):
        backup_codes.generate("")
    with pytest.raises(TypeError):
        backup_codes.verify(None, user_id="u1")  # type: ignore[arg-type]


def test_backup_codes_show_their_count_only(backup_codes: BackupCodes) -> None:
    assert repr(backup_codes) == f"BackupCodes(count={POLICY.backup_code_count})"
