"""The two cryptographic layers of the vault envelope, separately testable (Wycheproof).

* the cipher layer: AES-CBC with PKCS#7 padding, from ``cryptography``;
* the MAC layer: HMAC-SHA256 from ``cryptography``, verified in constant time by
  :meth:`cryptography.hazmat.primitives.hmac.HMAC.verify`;
* the framing: every field length-prefixed, so no byte can move from one field to another.

Nothing here is hand-rolled cryptography: this module only wires ``cryptography`` primitives
together and turns their failures into the vault's one opaque error.
"""

from __future__ import annotations

import struct
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from storno_security.errors import InvalidCiphertextError

BLOCK_BYTES: Final = 16
TAG_BYTES: Final = 32


def _cbc_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """AES-CBC-encrypt ``plaintext`` after PKCS#7 padding it to the block size."""
    padder = padding.PKCS7(algorithms.AES.block_size).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def _cbc_decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    """AES-CBC-decrypt and strip PKCS#7 padding.

    Raises:
        InvalidCiphertextError: the ciphertext is empty or not whole blocks (``malformed``), or
            the padding is wrong (``padding``).
    """
    if not ciphertext or len(ciphertext) % BLOCK_BYTES:
        raise InvalidCiphertextError(reason="malformed")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(algorithms.AES.block_size).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise InvalidCiphertextError(reason="padding") from None


def _hmac_sha256(key: bytes, message: bytes) -> bytes:
    """The HMAC-SHA256 tag of ``message``."""
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(message)
    return mac.finalize()


def _hmac_sha256_verify(key: bytes, message: bytes, tag: bytes) -> None:
    """Check a full-length HMAC-SHA256 tag in constant time.

    Raises:
        InvalidCiphertextError: the tag does not match (``mac``).
    """
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(message)
    try:
        mac.verify(tag)
    except InvalidSignature:
        raise InvalidCiphertextError(reason="mac") from None


def _frame(*fields: bytes) -> bytes:
    """Concatenate ``fields``, each preceded by its length as 8 big-endian bytes."""
    return b"".join(struct.pack(">Q", len(field)) + field for field in fields)
