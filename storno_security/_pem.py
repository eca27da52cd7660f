"""PEM loading and writing of keys, shared by the key-holding capabilities.

Private to the library, like ``_compare``: capabilities import it, never each other. Loading
takes the caller's error class and raises it with a fixed message and a ``reason``
(``wrong_type`` or ``malformed``): the message of the underlying error may quote key material,
so it is dropped, never chained. Checking the key's type and strength stays with the caller.
"""

from __future__ import annotations

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from storno_security.errors import StornoSecurityError

__all__ = ["load_private_pem", "load_public_pem", "private_pem", "public_pem"]


def _pem_bytes(pem: bytes | str, error: type[StornoSecurityError]) -> bytes:
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
    if not isinstance(data, bytes):
        raise error("a PEM is bytes or str", reason="wrong_type")
    return data


def load_private_pem(
    pem: bytes | str, *, password: bytes | None, error: type[StornoSecurityError]
) -> PrivateKeyTypes:
    """A PEM private key (PKCS#8 or PKCS#1 or SEC1, optionally encrypted) of any type.

    Raises:
        StornoSecurityError: ``error`` with ``reason="wrong_type"`` (``pem`` neither bytes nor
            str) or ``reason="malformed"`` (unreadable, or a wrong or missing password).
    """
    data = _pem_bytes(pem, error)
    try:
        return serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise error(
            "could not load the private key PEM (malformed, or wrong password)",
            reason="malformed",
        ) from None


def load_public_pem(pem: bytes | str, *, error: type[StornoSecurityError]) -> PublicKeyTypes:
    """A SubjectPublicKeyInfo PEM public key of any type.

    Raises:
        StornoSecurityError: ``error`` with ``reason="wrong_type"`` (``pem`` neither bytes nor
            str) or ``reason="malformed"``.
    """
    data = _pem_bytes(pem, error)
    try:
        return serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise error("could not load the public key PEM", reason="malformed") from None


def private_pem(key: PrivateKeyTypes, *, password: bytes | None = None) -> bytes:
    """The PKCS#8 PEM of ``key``, encrypted with ``password`` when one is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def public_pem(key: PublicKeyTypes) -> bytes:
    """The SubjectPublicKeyInfo PEM of ``key``."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
