"""Known-answer tests for the library's own formats (issue 17), from the JSON files beside this
module (see README.md there): vault tokens both ways, API keys from fixed draws, refresh and
password-reset tokens to their stored SHA-256, the format acceptance and refusal lists, and the
number of random bits each generator draws."""

from __future__ import annotations

import base64
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from storno_security._encoding import b64url_decode
from storno_security.accounts import PasswordResetPolicy, PasswordResetTokens, hash_reset_token
from storno_security.accounts.reset import _new_reset_token
from storno_security.api_keys import generate_api_key, parse_api_key
from storno_security.api_keys.format import _generate_api_key
from storno_security.clock import FrozenClock
from storno_security.errors import (
    InvalidApiKeyError,
    InvalidCiphertextError,
    InvalidRefreshTokenError,
    InvalidResetTokenError,
)
from storno_security.stores.memory import (
    MemoryRefreshFamilyStore,
    MemoryResetTokenStore,
    MemorySessionStateStore,
)
from storno_security.tokens import (
    AccessTokenIssuer,
    KeyRing,
    SessionManager,
    SigningKey,
    TokenPolicy,
    hash_refresh_token,
)
from storno_security.vault import VaultKey, VaultKeyRing
from storno_security.vault.ring import _seal

HERE = Path(__file__).parent
DRAWS = 200  # outputs per generator in the statistical checks


def _load(name: str) -> dict[str, Any]:
    return json.loads((HERE / name).read_text(encoding="ascii"))  # type: ignore[no-any-return]


VAULT = _load("vault_tokens.json")
API_KEYS = _load("api_keys.json")
REFRESH = _load("refresh_tokens.json")
RESET = _load("reset_tokens.json")


def _ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [vector["name"] for vector in vectors]


class Recorder:
    """A randomness source that hands out fixed answers and records what it was asked."""

    def __init__(self, answers: list[Any]) -> None:
        self._answers = list(answers)
        self.asked: list[int] = []

    def __call__(self, size_or_bound: int) -> Any:
        self.asked.append(size_or_bound)
        return self._answers.pop(0)


def test_make_vectors_reproduces_the_files_byte_for_byte(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(HERE / "make_vectors.py"), "--out", str(tmp_path)],
        check=True,
        timeout=120,
    )
    written = sorted(path.name for path in tmp_path.iterdir())
    assert written == sorted(path.name for path in HERE.glob("*.json"))
    for name in written:
        assert (tmp_path / name).read_bytes() == (HERE / name).read_bytes(), name


# --- vault tokens -------------------------------------------------------------------------------


def _vault_key(vector: dict[str, Any]) -> VaultKey:
    return VaultKey(base64.b64decode(vector["master_key_b64"]), kid=vector["kid"])


@pytest.mark.spec("VLT-1")
@pytest.mark.parametrize("vector", VAULT["vectors"], ids=_ids(VAULT["vectors"]))
def test_vault_seal_with_a_fixed_iv_gives_the_exact_token(vector: dict[str, Any]) -> None:
    key = _vault_key(vector)
    assert key.kid == (vector["kid"] or vector["derived_kid"])
    assert key._enc_key.hex() == vector["enc_key_hex"]
    assert key._mac_key.hex() == vector["mac_key_hex"]
    iv = Recorder([bytes.fromhex(vector["iv_hex"])])
    token = _seal(
        key,
        bytes.fromhex(vector["plaintext_hex"]),
        bytes.fromhex(vector["associated_data_hex"]),
        random_bytes=iv,
    )
    assert token == vector["token"]
    assert iv.asked == [16]


@pytest.mark.spec("VLT-1")
@pytest.mark.parametrize("vector", VAULT["vectors"], ids=_ids(VAULT["vectors"]))
def test_vault_open_of_the_token_gives_the_plaintext(vector: dict[str, Any]) -> None:
    ring = VaultKeyRing(_vault_key(vector))
    ad = bytes.fromhex(vector["associated_data_hex"])
    assert ring.open(vector["token"], associated_data=ad) == bytes.fromhex(vector["plaintext_hex"])
    assert not ring.needs_rotation(vector["token"])


@pytest.mark.spec("VLT-3")
@pytest.mark.parametrize("vector", VAULT["vectors"], ids=_ids(VAULT["vectors"]))
def test_vault_token_of_a_retired_key_opens_and_rotates(vector: dict[str, Any]) -> None:
    old = _vault_key(vector)
    new = VaultKey(bytes(reversed(base64.b64decode(vector["master_key_b64"]))), kid="next")
    ring = VaultKeyRing(new, decrypt_only=[old])
    ad = bytes.fromhex(vector["associated_data_hex"])
    plaintext = bytes.fromhex(vector["plaintext_hex"])
    assert ring.needs_rotation(vector["token"])
    assert ring.open(vector["token"], associated_data=ad) == plaintext
    rotated = ring.rotate(vector["token"], associated_data=ad)
    assert rotated.startswith("v1.next.")
    assert ring.open(rotated, associated_data=ad) == plaintext
    with pytest.raises(InvalidCiphertextError):
        VaultKeyRing(new).open(vector["token"], associated_data=ad)


@pytest.mark.spec("VLT-3")
@pytest.mark.parametrize("vector", VAULT["refused"], ids=_ids(VAULT["refused"]))
def test_vault_refused_tokens(vector: dict[str, Any]) -> None:
    ring = VaultKeyRing(_vault_key(VAULT["vectors"][1]))
    with pytest.raises(InvalidCiphertextError) as caught:
        ring.open(vector["token"], associated_data=bytes.fromhex(vector["associated_data_hex"]))
    assert str(caught.value) == "invalid sealed secret"


@pytest.mark.spec("VLT-1")
def test_vault_seal_draws_a_16_byte_iv_and_the_public_seal_uses_fresh_ones() -> None:
    key = _vault_key(VAULT["vectors"][0])
    ring = VaultKeyRing(key)
    ivs = []
    for _ in range(DRAWS):
        raw = b64url_decode(ring.seal(b"", associated_data=b"ad").split(".")[2])
        assert len(raw) == 16 + 16 + 32  # IV, one padding block, tag
        ivs.append(raw[:16])
    assert len(set(ivs)) == DRAWS
    _check_every_position_varies([iv.hex() for iv in ivs], alphabet_size=16)
    with pytest.raises(ValueError, match="16 bytes"):
        _seal(key, b"", b"", random_bytes=lambda n: bytes(n - 1))


@pytest.mark.spec("VLT-1")
def test_vault_master_key_is_512_random_bits() -> None:
    masters = [base64.b64decode(VaultKey.generate().to_base64()) for _ in range(DRAWS)]
    assert {len(master) for master in masters} == {64}
    _check_every_position_varies([master.hex() for master in masters], alphabet_size=16)


# --- API keys -----------------------------------------------------------------------------------


def _draws(vector: dict[str, Any]) -> tuple[list[int], list[int]]:
    bounds = [int(draw["bound"]) for draw in vector["randbelow"]]
    values = [int(draw["value"]) for draw in vector["randbelow"]]
    return bounds, values


@pytest.mark.spec("KEY-1")
@pytest.mark.parametrize("vector", API_KEYS["vectors"], ids=_ids(API_KEYS["vectors"]))
def test_api_key_from_fixed_draws_is_the_exact_key(vector: dict[str, Any]) -> None:
    bounds, values = _draws(vector)
    randbelow = Recorder(values)
    generated = _generate_api_key(randbelow=randbelow)
    assert randbelow.asked == bounds
    assert generated.key == vector["key"]
    assert generated.key_id == vector["key_id"]
    assert generated.key_hash == vector["key_hash"]
    assert generated.key.endswith(vector["checksum"])
    parsed = parse_api_key(vector["key"])
    assert (parsed.key_id, parsed.key_hash, parsed.legacy) == (
        vector["key_id"],
        vector["key_hash"],
        False,
    )


@pytest.mark.spec("KEY-1")
@pytest.mark.parametrize("vector", API_KEYS["legacy"], ids=lambda v: v["key"][:12])
def test_legacy_api_key_verifies_to_its_hash(vector: dict[str, Any]) -> None:
    parsed = parse_api_key(vector["key"])
    assert (parsed.key_id, parsed.key_hash, parsed.legacy) == (
        vector["key_id"],
        vector["key_hash"],
        True,
    )
    with pytest.raises(InvalidApiKeyError):
        parse_api_key(vector["key"], accept_legacy=False)


@pytest.mark.spec("KEY-1")
@pytest.mark.parametrize("vector", API_KEYS["refused"], ids=_ids(API_KEYS["refused"]))
def test_api_key_refused_forms(vector: dict[str, Any]) -> None:
    with pytest.raises(InvalidApiKeyError) as caught:
        parse_api_key(vector["key"])
    assert caught.value.reason == "malformed"


@pytest.mark.spec("KEY-1")
def test_api_key_draws_the_documented_bits() -> None:
    randbelow = Recorder([0, 0])
    _generate_api_key(randbelow=randbelow)
    id_bound, secret_bound = randbelow.asked
    assert math.log2(secret_bound) >= 256  # the secret: at least 256 bits
    assert math.floor(math.log2(id_bound)) == 71  # the public id: 71 bits
    with pytest.raises(ValueError, match="out of range"):
        _generate_api_key(randbelow=lambda bound: bound)
    keys = [generate_api_key().key for _ in range(DRAWS)]
    # id and secret are uniform base62; the checksum (CRC-32 < 62**6) starts with 0 to 4
    _check_every_position_varies([key[3:15] + key[16:59] for key in keys], alphabet_size=62)
    for position in range(59, 65):
        assert len({key[position] for key in keys}) >= 2


# --- refresh tokens ------------------------------------------------------------------------------


@pytest.mark.spec("REF-1")
@pytest.mark.parametrize("vector", REFRESH["vectors"], ids=_ids(REFRESH["vectors"]))
def test_refresh_token_is_stored_as_its_sha256(vector: dict[str, Any]) -> None:
    assert b64url_decode(vector["token"]) == bytes.fromhex(vector["random_hex"])
    assert hash_refresh_token(vector["token"]) == vector["sha256"]


@pytest.mark.spec("REF-1")
@pytest.mark.parametrize("vector", REFRESH["accepted"], ids=_ids(REFRESH["accepted"]))
def test_refresh_token_accepted_forms(vector: dict[str, Any]) -> None:
    assert len(hash_refresh_token(vector["token"])) == 64


@pytest.mark.spec("REF-1")
@pytest.mark.parametrize("vector", REFRESH["refused"], ids=_ids(REFRESH["refused"]))
def test_refresh_token_refused_forms(vector: dict[str, Any]) -> None:
    with pytest.raises(InvalidRefreshTokenError):
        hash_refresh_token(vector["token"])


@pytest.mark.spec("REF-1")
def test_refresh_tokens_are_256_random_bits(clock: FrozenClock) -> None:
    policy = TokenPolicy(issuer="https://api.storno.test", audience="storno-api")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    manager = SessionManager(
        issuer=AccessTokenIssuer(KeyRing(SigningKey.from_private_key(key)), policy, clock=clock),
        policy=policy,
        families=MemoryRefreshFamilyStore(),
        sessions=MemorySessionStateStore(),
        clock=clock,
    )
    tokens = [manager.start("user-1").refresh_token for _ in range(DRAWS)]
    assert {len(b64url_decode(token)) for token in tokens} == {REFRESH["random_bytes"]}
    _check_every_position_varies(tokens, alphabet_size=64)


# --- password-reset tokens -----------------------------------------------------------------------


@pytest.mark.spec("ACC-2")
@pytest.mark.parametrize("vector", RESET["vectors"], ids=_ids(RESET["vectors"]))
def test_reset_token_from_fixed_bytes_is_the_exact_token_and_hash(vector: dict[str, Any]) -> None:
    random_bytes = Recorder([bytes.fromhex(vector["random_hex"])])
    token = _new_reset_token(vector["token_bytes"], random_bytes=random_bytes)
    assert random_bytes.asked == [vector["token_bytes"]]
    assert token == vector["token"]
    assert hash_reset_token(token) == vector["sha256"]


@pytest.mark.spec("ACC-2")
@pytest.mark.parametrize("vector", RESET["accepted"], ids=_ids(RESET["accepted"]))
def test_reset_token_accepted_forms(vector: dict[str, Any]) -> None:
    assert len(hash_reset_token(vector["token"])) == 64


@pytest.mark.spec("ACC-2")
@pytest.mark.parametrize("vector", RESET["refused"], ids=_ids(RESET["refused"]))
def test_reset_token_refused_forms(vector: dict[str, Any]) -> None:
    with pytest.raises(InvalidResetTokenError) as caught:
        hash_reset_token(vector["token"])
    assert caught.value.reason == "malformed"


@pytest.mark.spec("ACC-2")
@pytest.mark.parametrize("token_bytes", [32, 64])
def test_reset_tokens_draw_the_policy_bits(token_bytes: int, clock: FrozenClock) -> None:
    recorder = Recorder([bytes(token_bytes)])
    _new_reset_token(token_bytes, random_bytes=recorder)
    assert recorder.asked == [token_bytes]
    with pytest.raises(ValueError, match="random bytes"):
        _new_reset_token(token_bytes, random_bytes=lambda n: bytes(n - 1))
    resets = PasswordResetTokens(
        MemoryResetTokenStore(),
        clock=clock,
        policy=PasswordResetPolicy(token_bytes=token_bytes, max_active_per_user=10),
    )
    tokens = [resets.issue(f"user-{i}").token for i in range(DRAWS)]
    assert {len(b64url_decode(token[4:])) for token in tokens} == {token_bytes}
    _check_every_position_varies([token[4:] for token in tokens], alphabet_size=64)


# --- shared -------------------------------------------------------------------------------------


def _check_every_position_varies(outputs: list[str], *, alphabet_size: int) -> None:
    """Every character position takes several values over the draws (a stuck position, a
    counter or a short random source shows up here), and full positions take most of the
    alphabet. The last base64url character of a 32-byte value carries 2 random bits, so it
    is held only to "varies"."""
    length = len(outputs[0])
    assert all(len(output) == length for output in outputs)
    full = min(alphabet_size, DRAWS) // 2
    for position in range(length):
        seen = {output[position] for output in outputs}
        assert len(seen) >= 2, f"position {position} never changes"
        if position < length - 1:
            # 200 uniform draws over 62 or 64 symbols leave about 3 unseen; 16 leave none
            assert len(seen) >= full, f"position {position}: {len(seen)} symbols"
