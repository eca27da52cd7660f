"""The vault key ring: sealing, opening, associated data, rotation, opaque errors."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from storno_security.errors import InvalidCiphertextError, VaultKeyError
from storno_security.vault import MASTER_KEY_BYTES, VaultKey, VaultKeyRing
from storno_security.vault import ring as ring_module
from storno_security.vault._layers import _hmac_sha256

KEY_A = VaultKey(bytes(range(64)))
KEY_B = VaultKey(bytes(range(64, 128)))
RING = VaultKeyRing(KEY_A)
AD = b"company:42/s3_secret_key"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _raw(token: str) -> bytes:
    body = token.split(".")[2]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def _with_raw(token: str, raw: bytes) -> str:
    version, kid, _ = token.split(".")
    return f"{version}.{kid}.{_b64url(raw)}"


def _reason(ring: VaultKeyRing, token: str, ad: bytes | str = AD) -> str:
    with pytest.raises(InvalidCiphertextError) as info:
        ring.open(token, associated_data=ad)
    assert str(info.value) == "invalid sealed secret"
    return info.value.reason


# --- VLT-1: the envelope -----------------------------------------------------------------------


@pytest.mark.spec("VLT-1")
@given(plaintext=st.binary(max_size=600), ad=st.binary(max_size=100))
def test_round_trip(plaintext: bytes, ad: bytes) -> None:
    token = RING.seal(plaintext, associated_data=ad)
    assert token.isascii()
    assert RING.open(token, associated_data=ad) == plaintext


def test_text_is_sealed_as_utf8() -> None:
    token = RING.seal("cheie secretă", associated_data="company:42/ß")
    assert RING.open(token, associated_data="company:42/ß".encode()) == "cheie secretă".encode()


@pytest.mark.spec("VLT-1")
def test_token_shape_and_random_iv() -> None:
    first = RING.seal(b"same", associated_data=AD)
    second = RING.seal(b"same", associated_data=AD)
    assert first != second
    version, kid, _body = first.split(".")
    assert (version, kid) == ("v1", KEY_A.kid)
    raw1, raw2 = _raw(first), _raw(second)
    assert len(raw1) == 16 + 16 + 32  # IV, one block, tag
    assert raw1[:16] != raw2[:16]


@pytest.mark.spec("VLT-1")
@settings(max_examples=300)
@given(data=st.data())
def test_any_single_bit_change_of_the_token_is_rejected(data: st.DataObject) -> None:
    plaintext = data.draw(st.binary(max_size=80), label="plaintext")
    token = RING.seal(plaintext, associated_data=AD)
    # Half the draws hit the last two characters, whose low bits base64 may leave unused.
    last = len(token) - 1
    index = data.draw(st.integers(0, last) | st.integers(last - 1, last), label="index")
    bit = data.draw(st.integers(0, 7), label="bit")
    chars = list(token)
    chars[index] = chr(ord(chars[index]) ^ (1 << bit))
    with pytest.raises(InvalidCiphertextError):
        RING.open("".join(chars), associated_data=AD)


@pytest.mark.spec("VLT-1")
@given(data=st.data())
def test_any_single_bit_change_of_iv_ciphertext_or_tag_fails_the_mac(data: st.DataObject) -> None:
    token = RING.seal(data.draw(st.binary(max_size=80)), associated_data=AD)
    raw = bytearray(_raw(token))
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] ^= 1 << data.draw(st.integers(0, 7))
    assert _reason(RING, _with_raw(token, bytes(raw))) == "mac"


@pytest.mark.spec("VLT-1")
def test_mac_is_checked_before_any_decryption(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real = ring_module._cbc_decrypt

    def spy(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
        calls.append(ciphertext)
        return real(key, iv, ciphertext)

    monkeypatch.setattr(ring_module, "_cbc_decrypt", spy)
    token = RING.seal(b"secret", associated_data=AD)
    raw = bytearray(_raw(token))
    raw[20] ^= 1  # ciphertext
    assert _reason(RING, _with_raw(token, bytes(raw))) == "mac"
    assert _reason(RING, token, b"other") == "mac"
    assert calls == []
    assert RING.open(token, associated_data=AD) == b"secret"
    assert len(calls) == 1


def test_non_canonical_base64_is_refused() -> None:
    token = RING.seal(b"x", associated_data=AD)  # 64 raw bytes: the last character has 4 free bits
    last = token[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = alphabet[alphabet.index(last) | 1]
    assert twin != last
    assert _reason(RING, token[:-1] + twin) == "malformed"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "v1",
        "v1.kid",
        "v1..AAAA",
        "v1.kid.body.extra",
        "v1.k!d.AAAA",
        "v1.kid.AAAA=",
        "v1.kid.AA+/",
        "v1.é.AAAA",
    ],
)
def test_malformed_tokens(token: str) -> None:
    assert _reason(VaultKeyRing(VaultKey(bytes(64), kid="kid")), token) == "malformed"


def test_short_or_ragged_bodies_are_malformed() -> None:
    token = RING.seal(b"x", associated_data=AD)
    raw = _raw(token)
    assert _reason(RING, _with_raw(token, raw[:-1])) == "malformed"
    assert _reason(RING, _with_raw(token, raw[:16] + raw[32:])) == "malformed"


def test_unknown_version() -> None:
    token = RING.seal(b"x", associated_data=AD)
    assert _reason(RING, "v2" + token[2:]) == "version"


def test_too_long_token_refused_before_decoding() -> None:
    ring = VaultKeyRing(KEY_A, max_plaintext_bytes=32)
    with pytest.raises(ValueError, match="longer"):
        ring.seal(b"x" * 33, associated_data=AD)
    token = RING.seal(b"x" * 100, associated_data=AD)
    assert _reason(ring, token) == "malformed"
    assert ring.open(ring.seal(b"x" * 32, associated_data=AD), associated_data=AD) == b"x" * 32


def test_types_are_checked() -> None:
    with pytest.raises(TypeError):
        RING.seal(123, associated_data=AD)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        RING.seal(b"x", associated_data=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        RING.open(b"v1.a.b", associated_data=AD)  # type: ignore[arg-type]


# --- VLT-2: associated data ------------------------------------------------------------------


@pytest.mark.spec("VLT-2")
def test_wrong_associated_data_fails() -> None:
    token = RING.seal(b"secret", associated_data=AD)
    assert _reason(RING, token, b"company:42/s3_access_key") == "mac"
    assert _reason(RING, token, b"") == "mac"


@pytest.mark.spec("VLT-2")
def test_ciphertext_moved_to_another_record_fails() -> None:
    records = {
        ("company-1", "s3_secret"): RING.seal(b"one", associated_data="company-1/s3_secret"),
        ("company-2", "s3_secret"): RING.seal(b"two", associated_data="company-2/s3_secret"),
    }
    # An attacker with write access to the table copies company 1's secret over company 2's.
    records["company-2", "s3_secret"] = records["company-1", "s3_secret"]
    assert _reason(RING, records["company-2", "s3_secret"], "company-2/s3_secret") == "mac"
    assert RING.open(records["company-1", "s3_secret"], associated_data="company-1/s3_secret")


@pytest.mark.spec("VLT-2")
@given(ad=st.binary(max_size=40), other=st.binary(max_size=40))
def test_any_other_associated_data_fails(ad: bytes, other: bytes) -> None:
    token = RING.seal(b"secret", associated_data=ad)
    if other == ad:
        assert RING.open(token, associated_data=other) == b"secret"
    else:
        assert _reason(RING, token, other) == "mac"


# --- VLT-3: key ring, rotation, one error -----------------------------------------------------


@pytest.mark.spec("VLT-3")
def test_rotation_reseals_under_the_active_key() -> None:
    old_token = VaultKeyRing(KEY_A).seal(b"secret", associated_data=AD)
    ring = VaultKeyRing(KEY_B, decrypt_only=[KEY_A])
    assert ring.kids == (KEY_B.kid, KEY_A.kid)
    assert ring.open(old_token, associated_data=AD) == b"secret"  # older keys still open
    assert ring.needs_rotation(old_token) is True
    new_token = ring.rotate(old_token, associated_data=AD)
    assert new_token.split(".")[1] == KEY_B.kid
    assert ring.needs_rotation(new_token) is False
    # Once everything is re-sealed, the old key can go.
    assert VaultKeyRing(KEY_B).open(new_token, associated_data=AD) == b"secret"
    assert ring.seal(b"new", associated_data=AD).split(".")[1] == KEY_B.kid


@pytest.mark.spec("VLT-3")
def test_retired_key_no_longer_opens() -> None:
    token = VaultKeyRing(KEY_A).seal(b"secret", associated_data=AD)
    assert _reason(VaultKeyRing(KEY_B), token) == "unknown_key"


@pytest.mark.spec("VLT-3")
def test_rotate_refuses_a_tampered_token() -> None:
    ring = VaultKeyRing(KEY_B, decrypt_only=[KEY_A])
    token = VaultKeyRing(KEY_A).seal(b"secret", associated_data=AD)
    with pytest.raises(InvalidCiphertextError):
        ring.rotate(token, associated_data=b"other")


def test_needs_rotation_refuses_garbage() -> None:
    with pytest.raises(InvalidCiphertextError):
        RING.needs_rotation("garbage")
    assert RING.needs_rotation(f"v1.{KEY_B.kid}.AAAA") is True


def _bad_padding_token(key: VaultKey, ad: bytes) -> str:
    """A token with a valid MAC over a ciphertext whose padding is wrong."""
    iv = bytes(16)
    block = b"\x00" * 15 + b"\x11"  # last byte 17: not a PKCS#7 pad of a 16-byte block
    encryptor = Cipher(algorithms.AES(key._enc_key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(block) + encryptor.finalize()
    tag = _hmac_sha256(key._mac_key, ring_module._mac_input(key.kid, iv, ciphertext, ad))
    return f"v1.{key.kid}.{_b64url(iv + ciphertext + tag)}"


@pytest.mark.spec("VLT-3")
def test_every_failure_is_one_opaque_error() -> None:
    same_kid_other_key = VaultKeyRing(VaultKey(bytes(64), kid=KEY_A.kid))
    token = RING.seal(b"secret", associated_data=AD)
    tampered = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
    failures = {
        "malformed": (RING, "not a token"),
        "version": (RING, "v9" + token[2:]),
        "unknown_key": (VaultKeyRing(KEY_B), token),
        "mac": (same_kid_other_key, token),  # wrong key
        "padding": (RING, _bad_padding_token(KEY_A, AD)),
    }
    errors = []
    for reason, (ring, bad) in failures.items():
        with pytest.raises(InvalidCiphertextError) as info:
            ring.open(bad, associated_data=AD)
        assert info.value.reason == reason
        errors.append(info.value)
    assert _reason(RING, tampered) in {"mac", "malformed"}
    assert {type(e) for e in errors} == {InvalidCiphertextError}
    assert {str(e) for e in errors} == {"invalid sealed secret"}
    assert all(e.__cause__ is None and e.__suppress_context__ for e in errors if e.__context__)


# --- keys ------------------------------------------------------------------------------------


def test_key_from_base64_round_trip_and_derived_kid() -> None:
    key = VaultKey.generate()
    text = key.to_base64()
    loaded = VaultKey.from_base64(text)
    assert loaded.kid == key.kid
    assert len(key.kid) == 12
    assert VaultKey.from_base64(text.encode()).kid == key.kid
    urlsafe = text.replace("+", "-").replace("/", "_").rstrip("=")
    assert VaultKey.from_base64(urlsafe).kid == key.kid
    assert VaultKey.from_base64(text[:40] + "\n" + text[40:]).kid == key.kid
    token = VaultKeyRing(key).seal(b"s", associated_data=AD)
    assert VaultKeyRing(loaded).open(token, associated_data=AD) == b"s"


def test_given_kid() -> None:
    key = VaultKey(bytes(64), kid="2026-03")
    assert key.kid == "2026-03"
    assert VaultKeyRing(key).seal(b"s", associated_data=AD).startswith("v1.2026-03.")
    for bad in ("", "a.b", "x" * 65, "é"):
        with pytest.raises(VaultKeyError):
            VaultKey(bytes(64), kid=bad)


@pytest.mark.parametrize("length", [0, 32, 63, 65, 128])
def test_master_key_length_is_exact(length: int) -> None:
    with pytest.raises(VaultKeyError) as info:
        VaultKey(b"k" * length)
    assert info.value.reason == "length"
    with pytest.raises(VaultKeyError):
        VaultKey.from_base64(base64.b64encode(b"k" * length).decode())
    assert MASTER_KEY_BYTES == 64


@pytest.mark.parametrize("text", ["not base64!", "QUJD=QUJD", b"\xff\xfe", "A" * 85])
def test_malformed_base64_key(text: str | bytes) -> None:
    with pytest.raises(VaultKeyError) as info:
        VaultKey.from_base64(text)
    assert info.value.__cause__ is None
    assert str(text) not in str(info.value)


def test_key_type_is_checked() -> None:
    with pytest.raises(TypeError):
        VaultKey("k" * 64)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        VaultKey.from_base64(123)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        VaultKeyRing("key")  # type: ignore[arg-type]


def test_sub_keys_are_distinct_and_secret_free_repr() -> None:
    key = VaultKey(b"\x01" * 32 * 2)  # a master made of one value twice
    assert key._enc_key != key._mac_key
    assert key._enc_key not in (key._master[:32], key._master[32:])
    text = repr(key) + repr(VaultKeyRing(key))
    assert key.to_base64() not in text
    assert key.kid in text


def test_duplicate_key_ids_are_refused() -> None:
    with pytest.raises(VaultKeyError):
        VaultKeyRing(KEY_A, decrypt_only=[VaultKey(bytes(range(64)))])
    with pytest.raises(VaultKeyError):
        VaultKeyRing.from_base64(KEY_A.to_base64(), decrypt_only=[KEY_A.to_base64()])


def test_ring_from_base64() -> None:
    ring = VaultKeyRing.from_base64(KEY_B.to_base64(), decrypt_only=[KEY_A.to_base64()])
    assert ring.active_kid == KEY_B.kid
    assert ring.open(RING.seal(b"s", associated_data=AD), associated_data=AD) == b"s"


@pytest.mark.parametrize("size", [0, -1, 16 * 1024 * 1024 + 1, True, 1.5])
def test_max_plaintext_bytes_is_checked(size: object) -> None:
    with pytest.raises(ValueError, match="max_plaintext_bytes"):
        VaultKeyRing(KEY_A, max_plaintext_bytes=size)  # type: ignore[arg-type]


# --- exact edges (each kills a mutant that the tests above let live) --------------------------


@pytest.mark.spec("VLT-1")
@pytest.mark.parametrize("limit", [1, 15, 16, 17, 1000, 64 * 1024])
def test_a_plaintext_of_exactly_the_limit_seals_and_opens(limit: int) -> None:
    ring = VaultKeyRing(KEY_A, max_plaintext_bytes=limit)
    plaintext = b"\xff" * limit
    assert ring.open(ring.seal(plaintext, associated_data=AD), associated_data=AD) == plaintext
    with pytest.raises(ValueError, match="longer"):
        ring.seal(plaintext + b"x", associated_data=AD)


def test_the_plaintext_limit_bounds_are_inclusive() -> None:
    assert (
        VaultKeyRing(KEY_A, max_plaintext_bytes=1).open(
            VaultKeyRing(KEY_A, max_plaintext_bytes=1).seal(b"x", associated_data=AD),
            associated_data=AD,
        )
        == b"x"
    )
    VaultKeyRing(KEY_A, max_plaintext_bytes=16 * 1024 * 1024)
    for bad in (0, 16 * 1024 * 1024 + 1):
        with pytest.raises(ValueError, match="between 1 and 16 MiB"):
            VaultKeyRing(KEY_A, max_plaintext_bytes=bad)


@pytest.mark.spec("VLT-1")
@pytest.mark.parametrize("limit", [1, 16, 17, 1000, 64 * 1024])
def test_the_token_length_bound_is_the_longest_token_a_ring_can_open(limit: int) -> None:
    # The longest token: version, a 64-character key id, and the base64url (unpadded) of an IV,
    # the padded ciphertext of `limit` bytes and the tag. One character more is refused
    # before any decoding (malformed); exactly that many reaches the key lookup (unknown key).
    ring = VaultKeyRing(KEY_A, max_plaintext_bytes=limit)
    body_bytes = 16 + (limit // 16 + 1) * 16 + 32
    body_chars = -(-body_bytes * 4 // 3)
    header = f"v1.{'k' * 64}."
    assert _reason(ring, header + "A" * body_chars) == "unknown_key"
    assert _reason(ring, header + "A" * (body_chars + 1)) == "malformed"
    # and a real token of that length opens: a key whose id has 64 characters, a full plaintext
    long_id = VaultKey(bytes(range(64)), kid="k" * 64)
    sealing = VaultKeyRing(long_id, max_plaintext_bytes=limit)
    token = sealing.seal(b"\x00" * limit, associated_data=AD)
    assert len(token) == len(header) + body_chars
    assert sealing.open(token, associated_data=AD) == b"\x00" * limit


def test_a_secret_over_the_openers_limit_that_fits_its_blocks_is_refused() -> None:
    # 25 bytes seal into two blocks, which a ring with a 20-byte limit lets through its size
    # check (room for 20 bytes and padding); the plaintext itself is then over the limit.
    token = VaultKeyRing(KEY_A).seal(b"s" * 25, associated_data=AD)
    strict = VaultKeyRing(KEY_A, max_plaintext_bytes=20)
    assert len(_raw(token)) == 16 + 32 + 32  # iv, two blocks, tag
    assert _reason(strict, token) == "malformed"
    assert strict.open(strict.seal(b"s" * 20, associated_data=AD), associated_data=AD) == b"s" * 20
