"""Key ring: RFC 7638 kid, PEM loading, JWKS, rotation and retirement (JWT-1, JWT-3)."""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from storno_security.errors import InvalidKeyError, KeyRingError, UnknownKeyError
from storno_security.tokens import (
    KeyRing,
    SigningKey,
    load_public_key,
    rfc7638_thumbprint,
)

# RFC 7638, section 3.1: the example RSA key and its SHA-256 thumbprint.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
    "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2Qvzq"
    "Y368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0"
    "fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def _b64url_int(value: str) -> int:
    import base64

    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


@pytest.mark.spec("JWT-1")
def test_rfc7638_thumbprint_vector() -> None:
    key = rsa.RSAPublicNumbers(e=65537, n=_b64url_int(RFC7638_N)).public_key()
    assert rfc7638_thumbprint(key) == RFC7638_THUMBPRINT


@pytest.mark.spec("JWT-1")
def test_kid_is_the_thumbprint(signing_keys: list[SigningKey]) -> None:
    key = signing_keys[0]
    assert key.kid == rfc7638_thumbprint(key.private_key.public_key())


@pytest.mark.spec("JWT-3")
def test_jwks_document(signing_keys: list[SigningKey]) -> None:
    ring = KeyRing(signing_keys[0])
    ring.rotate(signing_keys[1])
    document = ring.jwks()
    assert [k["kid"] for k in document["keys"]] == [signing_keys[1].kid, signing_keys[0].kid]
    for jwk_dict in document["keys"]:
        assert set(jwk_dict) == {"kty", "use", "alg", "kid", "n", "e"}
        assert "d" not in jwk_dict
        # PyJWT reads our JWK back as the same public key
        parsed = jwt.PyJWK(jwk_dict)
        assert rfc7638_thumbprint(parsed.key) == jwk_dict["kid"]


@pytest.mark.spec("JWT-3")
def test_rotation_keeps_old_key_for_verification(signing_keys: list[SigningKey]) -> None:
    ring = KeyRing(signing_keys[0])
    old = ring.signer
    new = ring.rotate(signing_keys[1])
    assert ring.signer == new
    assert ring.verification_key(old.kid) is not None
    assert ring.kids == (new.kid, old.kid)
    with pytest.raises(KeyRingError):
        ring.rotate(signing_keys[1])
    with pytest.raises(KeyRingError):
        ring.retire(new.kid)
    ring.retire(old.kid)
    assert ring.verification_key(old.kid) is None
    with pytest.raises(UnknownKeyError) as info:
        ring.retire(old.kid)
    assert str(info.value) == f"no key {old.kid!r} in the ring"  # not quoted as a KeyError
    assert str(UnknownKeyError()) == "no such key in the ring"


def test_rotate_generates_when_no_key_given(signing_keys: list[SigningKey]) -> None:
    ring = KeyRing(signing_keys[0])
    new = ring.rotate()
    assert new.kid != signing_keys[0].kid
    assert new.private_key.key_size == 2048


def test_pem_round_trip(signing_keys: list[SigningKey]) -> None:
    key = signing_keys[0]
    assert SigningKey.from_pem(key.private_pem()).kid == key.kid
    encrypted = key.private_pem(password=b"pem password")
    assert b"ENCRYPTED" in encrypted
    assert SigningKey.from_pem(encrypted, password=b"pem password").kid == key.kid
    assert load_public_key(key.public.public_pem()).kid == key.kid


@pytest.mark.parametrize(
    ("pem", "password"),
    [
        (b"", None),
        (b"-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n", None),
        ("\u00e9\u00e9\u00e9 not even ascii", None),
    ],
)
def test_malformed_pem_is_our_error(pem: bytes | str, password: bytes | None) -> None:
    with pytest.raises(InvalidKeyError):
        SigningKey.from_pem(pem, password=password)
    with pytest.raises(InvalidKeyError):
        load_public_key(pem)


def test_truncated_pem_is_our_error(signing_keys: list[SigningKey]) -> None:
    pem = signing_keys[0].private_pem()
    with pytest.raises(InvalidKeyError):
        SigningKey.from_pem(pem[: len(pem) // 2])


def test_wrong_or_missing_pem_password(signing_keys: list[SigningKey]) -> None:
    encrypted = signing_keys[0].private_pem(password=b"right")
    with pytest.raises(InvalidKeyError):
        SigningKey.from_pem(encrypted, password=b"wrong")
    with pytest.raises(InvalidKeyError):
        SigningKey.from_pem(encrypted)


def test_non_rsa_key_refused() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem = ec_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(InvalidKeyError) as info:
        SigningKey.from_pem(pem)
    assert info.value.reason == "wrong_type"
    public_pem = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(InvalidKeyError):
        load_public_key(public_pem)


@pytest.mark.spec("JWT-1")
def test_rsa_below_2048_refused() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(InvalidKeyError) as info:
        SigningKey.from_private_key(weak)
    assert info.value.reason == "too_weak"
    with pytest.raises(ValueError, match="between 2048"):
        SigningKey.generate(bits=1024)


def test_ring_min_bits_applies_to_every_key(signing_keys: list[SigningKey]) -> None:
    with pytest.raises(InvalidKeyError):
        KeyRing(signing_keys[0], min_bits=3072)


def test_no_private_material_in_repr(signing_keys: list[SigningKey]) -> None:
    key = signing_keys[0]
    ring = KeyRing(key)
    numbers = key.private_key.private_numbers()
    for text in (repr(key), repr(ring), repr(key.public)):
        assert str(numbers.d)[:20] not in text
        assert "PRIVATE" not in text


@given(data=st.binary(max_size=2048))
@settings(max_examples=150)
def test_arbitrary_bytes_as_pem_give_only_our_error(data: bytes) -> None:
    with pytest.raises(InvalidKeyError):
        SigningKey.from_pem(data)
    with pytest.raises(InvalidKeyError):
        load_public_key(data)


@pytest.mark.spec("JWT-3")
def test_ring_persists_and_reloads(signing_keys: list[SigningKey]) -> None:
    ring = KeyRing(signing_keys[0])
    ring.rotate(signing_keys[1])
    reloaded = KeyRing.from_pem(
        ring.signer.private_pem(password=b"at rest"),
        verify_only_pems=ring.verify_only_pems(),
        password=b"at rest",
    )
    assert reloaded.kids == ring.kids
    assert reloaded.jwks() == ring.jwks()
    with pytest.raises(InvalidKeyError):
        KeyRing.from_pem(ring.signer.private_pem(), verify_only_pems=[b"garbage"])


def test_a_verification_key_over_8192_bits_is_refused() -> None:
    # A modulus this large costs every verification dearly; no real key needs it.
    n = (1 << 8199) | 1  # 8200 bits, odd: cryptography loads it as a public key
    huge = rsa.RSAPublicNumbers(65537, n).public_key()
    pem = huge.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(InvalidKeyError) as info:
        load_public_key(pem)
    assert info.value.reason == "too_large"
    assert str(info.value) == "RSA key over 8192 bits"


def test_ring_operations_refuse_keys_of_the_wrong_kind(signing_keys: list[SigningKey]) -> None:
    signer, other = signing_keys[0], signing_keys[1]
    with pytest.raises(InvalidKeyError) as info:
        SigningKey.from_private_key(signer.private_key.public_key())  # type: ignore[arg-type]
    assert info.value.reason == "wrong_type"
    with pytest.raises(TypeError, match="signer must be a SigningKey"):
        KeyRing(signer.private_key)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="verify_only keys must be PublicKey instances"):
        KeyRing(signer, verify_only=[other])  # type: ignore[list-item]
    ring = KeyRing(signer)
    with pytest.raises(TypeError, match="key must be a PublicKey"):
        ring.add_verification_key(other)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="new_signer must be a SigningKey"):
        ring.rotate(other.public)  # type: ignore[arg-type]
    # nothing was changed by the refused calls
    assert ring.signer.kid == signer.kid
    assert ring.verification_key(other.kid) is None
