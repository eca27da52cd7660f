"""RSA signing keys for access tokens: a key ring with ``kid`` thumbprints, JWKS and rotation.

A :class:`KeyRing` holds exactly one signing key and any number of verify-only keys (JWT-3).
Rotation makes a new key the signer and keeps the old one for verification, so tokens it signed
stay valid until they expire; retiring a key makes every token it signed fail at once.

Every key's ``kid`` is its RFC 7638 JWK thumbprint (base64url SHA-256 of the canonical
``{"e","kty","n"}`` JSON), so the id is derived from the key, never chosen.

The ring is safe to share between threads: every change swaps one immutable snapshot, and
readers never lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import attrs
from cryptography.hazmat.primitives.asymmetric import rsa

from storno_security._encoding import b64url_uint
from storno_security._jwk import jwk_thumbprint
from storno_security._jws import RSA_ALGORITHMS
from storno_security._pem import load_private_pem, load_public_pem, private_pem, public_pem
from storno_security.errors import InvalidKeyError, KeyRingError, UnknownKeyError

__all__ = [
    "MIN_RSA_BITS",
    "KeyRing",
    "PublicKey",
    "SigningKey",
    "load_public_key",
    "rfc7638_thumbprint",
]

#: The smallest RSA modulus any ring accepts (JWT-1).
MIN_RSA_BITS = 2048
_MAX_RSA_BITS = 8192


def rfc7638_thumbprint(public_key: rsa.RSAPublicKey) -> str:
    """Return the RFC 7638 JWK thumbprint (SHA-256, base64url, no padding) of an RSA key.

    Raises:
        TypeError: ``public_key`` is not an RSA, EC or OKP public key.
    """
    return jwk_thumbprint(public_key)


def _check_strength(public_key: rsa.RSAPublicKey, min_bits: int) -> None:
    if public_key.key_size < min_bits:
        raise InvalidKeyError(
            f"RSA key of {public_key.key_size} bits is below the minimum of {min_bits}",
            reason="too_weak",
        )
    if public_key.key_size > _MAX_RSA_BITS:
        raise InvalidKeyError(f"RSA key over {_MAX_RSA_BITS} bits", reason="too_large")


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in RSA_ALGORITHMS:
        raise ValueError(f"algorithm must be one of {sorted(RSA_ALGORITHMS)}")


@attrs.frozen
class PublicKey:
    """A verification key of the ring.

    Attributes:
        kid: RFC 7638 thumbprint.
        key: the ``cryptography`` public key.
    """

    kid: str
    key: rsa.RSAPublicKey = attrs.field(repr=False, eq=False)

    def to_jwk(self, *, algorithm: str = "RS256") -> dict[str, str]:
        """Return the public JWK (``kty``, ``use``, ``alg``, ``kid``, ``n``, ``e``).

        Args:
            algorithm: the ``alg`` to advertise: the algorithm this key signs with, that is the
                policy's ``signing_algorithm``. A relying party's library (PyJWT's ``PyJWK``
                among them) verifies with this algorithm only, so it must be the right one.

        Raises:
            ValueError: ``algorithm`` is not an RSA signature algorithm (RS/PS 256/384/512).
        """
        _check_algorithm(algorithm)
        numbers = self.key.public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "alg": algorithm,
            "kid": self.kid,
            "n": b64url_uint(numbers.n),
            "e": b64url_uint(numbers.e),
        }

    def public_pem(self) -> bytes:
        """Return the SubjectPublicKeyInfo PEM."""
        return public_pem(self.key)


@attrs.frozen
class SigningKey:
    """The ring's signing key.

    Attributes:
        kid: RFC 7638 thumbprint of the public half.
        private_key: the ``cryptography`` private key (never in ``repr``).
    """

    kid: str
    private_key: rsa.RSAPrivateKey = attrs.field(repr=False, eq=False)

    @classmethod
    def generate(cls, *, bits: int = 3072) -> SigningKey:
        """Generate a fresh RSA key (public exponent 65537).

        Raises:
            ValueError: ``bits`` is below 2048 or above 8192.
        """
        if not MIN_RSA_BITS <= bits <= _MAX_RSA_BITS:
            raise ValueError(f"bits must be between {MIN_RSA_BITS} and {_MAX_RSA_BITS}")
        return cls.from_private_key(rsa.generate_private_key(public_exponent=65537, key_size=bits))

    @classmethod
    def from_private_key(
        cls, private_key: rsa.RSAPrivateKey, *, min_bits: int = MIN_RSA_BITS
    ) -> SigningKey:
        """Wrap a ``cryptography`` RSA private key.

        Raises:
            InvalidKeyError: not an RSA private key, or weaker than ``min_bits``.
        """
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise InvalidKeyError("signing key must be an RSA private key", reason="wrong_type")
        public_key = private_key.public_key()
        _check_strength(public_key, max(min_bits, MIN_RSA_BITS))
        return cls(kid=rfc7638_thumbprint(public_key), private_key=private_key)

    @classmethod
    def from_pem(
        cls, pem: bytes | str, *, password: bytes | None = None, min_bits: int = MIN_RSA_BITS
    ) -> SigningKey:
        """Load a PEM (PKCS#1 or PKCS#8, optionally encrypted) RSA private key.

        Raises:
            InvalidKeyError: the PEM is malformed, encrypted without (or with the wrong)
                ``password``, not RSA, or too weak.
        """
        key = load_private_pem(pem, password=password, error=InvalidKeyError)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise InvalidKeyError("signing key must be an RSA private key", reason="wrong_type")
        return cls.from_private_key(key, min_bits=min_bits)

    @property
    def public(self) -> PublicKey:
        """The public half, as a :class:`PublicKey`."""
        return PublicKey(kid=self.kid, key=self.private_key.public_key())

    def private_pem(self, *, password: bytes | None = None) -> bytes:
        """Return the PKCS#8 PEM, encrypted with ``password`` when given."""
        return private_pem(self.private_key, password=password)


def load_public_key(pem: bytes | str, *, min_bits: int = MIN_RSA_BITS) -> PublicKey:
    """Load a SubjectPublicKeyInfo PEM RSA public key as a verify-only :class:`PublicKey`.

    Raises:
        InvalidKeyError: malformed PEM, not RSA, or too weak.
    """
    key = load_public_pem(pem, error=InvalidKeyError)
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidKeyError("verification key must be an RSA public key", reason="wrong_type")
    _check_strength(key, max(min_bits, MIN_RSA_BITS))
    return PublicKey(kid=rfc7638_thumbprint(key), key=key)


@attrs.frozen
class _Snapshot:
    signer: SigningKey
    verifiers: Mapping[str, PublicKey]


class KeyRing:
    """One signing key plus verify-only keys, addressed by ``kid`` (JWT-3).

    Args:
        signer: the key that signs new tokens.
        verify_only: older keys whose tokens must still verify.
        min_bits: the weakest RSA key accepted (never below 2048).

    Raises:
        InvalidKeyError: a key is weaker than ``min_bits``.
    """

    def __init__(
        self,
        signer: SigningKey,
        *,
        verify_only: Iterable[PublicKey] = (),
        min_bits: int = MIN_RSA_BITS,
    ) -> None:
        if not isinstance(signer, SigningKey):
            raise TypeError("signer must be a SigningKey")
        self._min_bits = max(min_bits, MIN_RSA_BITS)
        self._lock = threading.Lock()
        verifiers: dict[str, PublicKey] = {}
        for key in verify_only:
            if not isinstance(key, PublicKey):
                raise TypeError("verify_only keys must be PublicKey instances")
            _check_strength(key.key, self._min_bits)
            verifiers[key.kid] = key
        _check_strength(signer.public.key, self._min_bits)
        verifiers[signer.kid] = signer.public
        self._snapshot = _Snapshot(signer, MappingProxyType(verifiers))

    @classmethod
    def generate(cls, *, bits: int = 3072) -> KeyRing:
        """A ring with one freshly generated signing key."""
        return cls(SigningKey.generate(bits=bits))

    @classmethod
    def from_pem(
        cls,
        signer_pem: bytes | str,
        *,
        verify_only_pems: Iterable[bytes | str] = (),
        password: bytes | None = None,
        min_bits: int = MIN_RSA_BITS,
    ) -> KeyRing:
        """Load a ring from a private-key PEM (the signer) and public-key PEMs (verify-only).

        Raises:
            InvalidKeyError: a PEM is malformed, encrypted without the right ``password``, not
                RSA, or weaker than ``min_bits``.
        """
        signer = SigningKey.from_pem(signer_pem, password=password, min_bits=min_bits)
        others = [load_public_key(pem, min_bits=min_bits) for pem in verify_only_pems]
        return cls(signer, verify_only=others, min_bits=min_bits)

    def verify_only_pems(self) -> list[bytes]:
        """The public PEMs of every key but the signer, to persist beside the signer's PEM."""
        snap = self._snapshot
        return [
            key.public_pem()
            for kid, key in sorted(snap.verifiers.items())
            if kid != snap.signer.kid
        ]

    def __repr__(self) -> str:
        snap = self._snapshot
        return f"KeyRing(signer={snap.signer.kid!r}, keys={sorted(snap.verifiers)!r})"

    @property
    def signer(self) -> SigningKey:
        """The current signing key."""
        return self._snapshot.signer

    @property
    def kids(self) -> tuple[str, ...]:
        """Every ``kid`` that verifies, signer first."""
        snap = self._snapshot
        return (snap.signer.kid, *sorted(k for k in snap.verifiers if k != snap.signer.kid))

    def verification_key(self, kid: str) -> PublicKey | None:
        """The key with this ``kid``, or ``None`` if it is not (or no longer) in the ring."""
        return self._snapshot.verifiers.get(kid)

    def add_verification_key(self, key: PublicKey) -> None:
        """Add a verify-only key (for example another instance's signer during a migration).

        Raises:
            InvalidKeyError: the key is too weak.
        """
        if not isinstance(key, PublicKey):
            raise TypeError("key must be a PublicKey")
        _check_strength(key.key, self._min_bits)
        with self._lock:
            snap = self._snapshot
            verifiers = dict(snap.verifiers)
            verifiers[key.kid] = key
            self._snapshot = _Snapshot(snap.signer, MappingProxyType(verifiers))

    def rotate(self, new_signer: SigningKey | None = None) -> SigningKey:
        """Make ``new_signer`` (or a freshly generated key of the same size) the signing key.

        The previous signer stays as a verify-only key, so live tokens keep verifying.

        Returns:
            The new signing key (persist it).

        Raises:
            InvalidKeyError: ``new_signer`` is too weak.
            KeyRingError: ``new_signer`` is already the signer.
        """
        with self._lock:
            snap = self._snapshot
            if new_signer is None:
                new_signer = SigningKey.generate(bits=snap.signer.private_key.key_size)
            if not isinstance(new_signer, SigningKey):
                raise TypeError("new_signer must be a SigningKey")
            if new_signer.kid == snap.signer.kid:
                raise KeyRingError("this key is the signer already", reason="same_key")
            _check_strength(new_signer.public.key, self._min_bits)
            verifiers = dict(snap.verifiers)
            verifiers[new_signer.kid] = new_signer.public
            self._snapshot = _Snapshot(new_signer, MappingProxyType(verifiers))
            return new_signer

    def retire(self, kid: str) -> None:
        """Remove a verify-only key: tokens it signed stop verifying at once.

        Raises:
            UnknownKeyError: no such ``kid`` in the ring.
            KeyRingError: ``kid`` is the current signer (rotate first).
        """
        with self._lock:
            snap = self._snapshot
            if kid == snap.signer.kid:
                raise KeyRingError("cannot retire the signing key; rotate first", reason="signer")
            if kid not in snap.verifiers:
                raise UnknownKeyError(f"no key {kid!r} in the ring")
            verifiers = {k: v for k, v in snap.verifiers.items() if k != kid}
            self._snapshot = _Snapshot(snap.signer, MappingProxyType(verifiers))

    def jwks(self, *, algorithm: str = "RS256") -> dict[str, Any]:
        """The public JWKS document (``{"keys": [...]}``), signer first.

        Args:
            algorithm: the ``alg`` of every key: pass the policy's ``signing_algorithm``
                (:meth:`AccessTokenIssuer.jwks
                <storno_security.tokens.AccessTokenIssuer.jwks>` does). The default is the
                policy's default, RS256.

        Raises:
            ValueError: ``algorithm`` is not an RSA signature algorithm (RS/PS 256/384/512).
        """
        _check_algorithm(algorithm)
        snap = self._snapshot
        return {"keys": [snap.verifiers[kid].to_jwk(algorithm=algorithm) for kid in self.kids]}
