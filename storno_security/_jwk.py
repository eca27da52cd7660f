"""RFC 7638 JWK thumbprints of public keys, shared by the key-holding capabilities.

Private to the library, like ``_compare``: capabilities import it, never each other.

The thumbprint is the unpadded base64url SHA-256 of the key's required JWK members, sorted,
without whitespace: ``e``, ``kty``, ``n`` for RSA (RFC 7638 section 3.2); ``crv``, ``kty``,
``x``, ``y`` for EC, coordinates at the full field length (RFC 7518 section 6.2.1.2);
``crv``, ``kty``, ``x`` for OKP (RFC 8037 section 2). It is derived from the key, so a key id
built on it can never be chosen by whoever supplies the key.
"""

from __future__ import annotations

import hashlib
import json
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x448, x25519

from storno_security._encoding import b64url_encode, b64url_uint

__all__ = ["jwk_thumbprint", "thumbprint_members"]

_EC_CURVES: Final = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_OKP_CURVES: Final = (
    (ed25519.Ed25519PublicKey, "Ed25519"),
    (ed448.Ed448PublicKey, "Ed448"),
    (x25519.X25519PublicKey, "X25519"),
    (x448.X448PublicKey, "X448"),
)


def thumbprint_members(public_key: object) -> dict[str, str]:
    """The JWK members RFC 7638 hashes for ``public_key``.

    Raises:
        TypeError: not an RSA, EC (P-256, P-384, P-521) or OKP public key.
    """
    if isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        return {"e": b64url_uint(numbers.e), "kty": "RSA", "n": b64url_uint(numbers.n)}
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        crv = _EC_CURVES.get(public_key.curve.name)
        if crv is None:
            raise TypeError(f"no JWK curve name for {public_key.curve.name}")
        size = (public_key.curve.key_size + 7) // 8
        point = public_key.public_numbers()
        return {
            "crv": crv,
            "kty": "EC",
            "x": b64url_encode(point.x.to_bytes(size, "big")),
            "y": b64url_encode(point.y.to_bytes(size, "big")),
        }
    for kind, crv in _OKP_CURVES:
        if isinstance(public_key, kind):
            raw = public_key.public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            return {"crv": crv, "kty": "OKP", "x": b64url_encode(raw)}
    raise TypeError(f"no RFC 7638 thumbprint for {type(public_key).__name__}")


def jwk_thumbprint(public_key: object) -> str:
    """The RFC 7638 SHA-256 thumbprint of ``public_key``, unpadded base64url (43 characters).

    Raises:
        TypeError: not an RSA, EC (P-256, P-384, P-521) or OKP public key.
    """
    members = thumbprint_members(public_key)
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode("ascii")
    return b64url_encode(hashlib.sha256(canonical).digest())
