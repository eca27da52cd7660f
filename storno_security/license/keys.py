"""License keys: the vendor's signing key and the public keys a verifier holds (LIC-1, LIC-4).

Each key fixes its algorithm: an RSA key (2048 to 8192 bits) is RS256, an Ed25519 or Ed448 key
is EdDSA. A token's ``alg`` header must name its key's algorithm and is never used to choose one.
A key's ``kid`` is its RFC 7638 JWK thumbprint unless one is given.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias

import attrs
from cryptography.hazmat.primitives.asymmetric import ed448, ed25519, rsa

from storno_security._jwk import jwk_thumbprint
from storno_security._pem import load_private_pem, load_public_pem, private_pem, public_pem
from storno_security.errors import LicenseKeyError

__all__ = [
    "LICENSE_ALGORITHMS",
    "MIN_RSA_BITS",
    "LicenseAlgorithm",
    "LicenseKey",
    "LicenseSigningKey",
]

#: The algorithms a license may be signed with (LIC-1).
LICENSE_ALGORITHMS: Final = frozenset({"RS256", "EdDSA"})
#: The weakest RSA key accepted.
MIN_RSA_BITS: Final = 2048
_MAX_RSA_BITS: Final = 8192
_MAX_KID: Final = 128

LicenseAlgorithm: TypeAlias = Literal["RS256", "EdDSA"]
_PublicKey: TypeAlias = rsa.RSAPublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
_PrivateKey: TypeAlias = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey


def _thumbprint(key: _PublicKey) -> str:
    """RFC 7638 thumbprint (SHA-256, base64url) of an RSA or OKP public key."""
    return jwk_thumbprint(key)


def _algorithm_of(key: object) -> LicenseAlgorithm:
    """The one algorithm a public key verifies, after checking its type and strength."""
    if isinstance(key, rsa.RSAPublicKey):
        if not MIN_RSA_BITS <= key.key_size <= _MAX_RSA_BITS:
            raise LicenseKeyError(
                f"RSA license keys are {MIN_RSA_BITS} to {_MAX_RSA_BITS} bits, not {key.key_size}",
                reason="too_weak" if key.key_size < MIN_RSA_BITS else "too_large",
            )
        return "RS256"
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return "EdDSA"
    raise LicenseKeyError(
        "license keys are RSA (RS256) or Ed25519/Ed448 (EdDSA)", reason="wrong_type"
    )


def _kid_for(key: _PublicKey, kid: str | None) -> str:
    if kid is None:
        return _thumbprint(key)
    if not isinstance(kid, str) or not kid or len(kid) > _MAX_KID or not kid.isprintable():
        raise LicenseKeyError(f"a kid is 1 to {_MAX_KID} printable characters", reason="kid")
    return kid


@attrs.frozen
class LicenseKey:
    """A public key that verifies licenses.

    Attributes:
        kid: the key id a license's header must name.
        algorithm: ``"RS256"`` or ``"EdDSA"``, fixed by the key's type.
        key: the ``cryptography`` public key.
    """

    kid: str
    algorithm: LicenseAlgorithm
    key: _PublicKey = attrs.field(repr=False, eq=False)

    @classmethod
    def from_public_key(cls, key: object, *, kid: str | None = None) -> LicenseKey:
        """Wrap a ``cryptography`` public key.

        Raises:
            LicenseKeyError: not RSA, Ed25519 or Ed448; RSA outside 2048..8192 bits; bad ``kid``.
        """
        algorithm = _algorithm_of(key)
        public: _PublicKey = key  # type: ignore[assignment]  # checked by _algorithm_of
        return cls(kid=_kid_for(public, kid), algorithm=algorithm, key=public)

    @classmethod
    def from_pem(cls, pem: bytes | str, *, kid: str | None = None) -> LicenseKey:
        """Load a SubjectPublicKeyInfo PEM (the form to embed in an application).

        Raises:
            LicenseKeyError: the PEM is malformed, of another key type, or too weak.
        """
        return cls.from_public_key(load_public_pem(pem, error=LicenseKeyError), kid=kid)

    def public_pem(self) -> bytes:
        """The SubjectPublicKeyInfo PEM."""
        return public_pem(self.key)


@attrs.frozen
class LicenseSigningKey:
    """The vendor's private key that signs licenses (LIC-4). Keep it off customer machines.

    Attributes:
        kid: the key id written into each license header.
        algorithm: ``"RS256"`` or ``"EdDSA"``, fixed by the key's type.
        private_key: the ``cryptography`` private key (never in ``repr``).
    """

    kid: str
    algorithm: LicenseAlgorithm
    private_key: _PrivateKey = attrs.field(repr=False, eq=False)

    @classmethod
    def generate(
        cls, algorithm: LicenseAlgorithm = "EdDSA", *, rsa_bits: int = 3072
    ) -> LicenseSigningKey:
        """A new key: Ed25519 for ``"EdDSA"`` (the default), RSA of ``rsa_bits`` for ``"RS256"``.

        Raises:
            ValueError: unknown ``algorithm``, or ``rsa_bits`` outside 2048..8192.
        """
        if algorithm == "EdDSA":
            return cls.from_private_key(ed25519.Ed25519PrivateKey.generate())
        if algorithm == "RS256":
            if not MIN_RSA_BITS <= rsa_bits <= _MAX_RSA_BITS:
                raise ValueError(f"rsa_bits must be between {MIN_RSA_BITS} and {_MAX_RSA_BITS}")
            return cls.from_private_key(
                rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
            )
        raise ValueError(f"algorithm must be one of {sorted(LICENSE_ALGORITHMS)}")

    @classmethod
    def from_private_key(cls, key: object, *, kid: str | None = None) -> LicenseSigningKey:
        """Wrap a ``cryptography`` private key.

        Raises:
            LicenseKeyError: not RSA, Ed25519 or Ed448; RSA outside 2048..8192 bits; bad ``kid``.
        """
        if not isinstance(
            key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
        ):
            raise LicenseKeyError(
                "license keys are RSA (RS256) or Ed25519/Ed448 (EdDSA)", reason="wrong_type"
            )
        public = LicenseKey.from_public_key(key.public_key(), kid=kid)
        return cls(kid=public.kid, algorithm=public.algorithm, private_key=key)

    @classmethod
    def from_pem(
        cls, pem: bytes | str, *, password: bytes | None = None, kid: str | None = None
    ) -> LicenseSigningKey:
        """Load a PEM private key (PKCS#8 or PKCS#1, optionally encrypted).

        Raises:
            LicenseKeyError: malformed, wrong or missing password, another key type, too weak.
        """
        key = load_private_pem(pem, password=password, error=LicenseKeyError)
        return cls.from_private_key(key, kid=kid)

    @property
    def public(self) -> LicenseKey:
        """The public half, to embed in the application that verifies."""
        return LicenseKey(kid=self.kid, algorithm=self.algorithm, key=self.private_key.public_key())

    def private_pem(self, *, password: bytes | None = None) -> bytes:
        """The PKCS#8 PEM, encrypted with ``password`` when given."""
        return private_pem(self.private_key, password=password)
