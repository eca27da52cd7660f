"""Vault keys: 64 random bytes, two sub-keys derived with HKDF, and a key id.

Why HKDF from one master key rather than splitting the 64 bytes into two halves: an operator
stores, backs up and rotates *one* secret; the encryption and MAC keys are independent even
when the master is not perfectly formed (a master made of one 32-byte value pasted twice would
give equal halves, and so the same key for AES and HMAC); the key id is derived from the master
through the same one-way function, so it identifies the key without revealing any of it; and a
later sub-key needs no format change. The cost is three HKDF-SHA256 expansions per key load,
none per seal or open.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from storno_security._encoding import b64url_encode
from storno_security.errors import VaultKeyError

__all__ = ["KID_PATTERN", "MASTER_KEY_BYTES", "VaultKey"]

#: Length of a vault master key: 512 random bits.
MASTER_KEY_BYTES: Final = 64
#: What a key id may look like: it sits between dots in a sealed token.
KID_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")

_INFO_ENC: Final = b"storno-vault v1 aes-256-cbc key"
_INFO_MAC: Final = b"storno-vault v1 hmac-sha256 key"
_INFO_KID: Final = b"storno-vault v1 key id"
_KID_BYTES: Final = 9  # 72 bits, 12 base64url characters


def _derive(master: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(master)


class VaultKey:
    """One vault key: a 64-byte master, its AES-256 and HMAC-SHA256 sub-keys, and its id.

    Args:
        master: exactly 64 random bytes (:meth:`generate` makes them).
        kid: the key id; by default derived from the master (12 base64url characters). A
            given id must match ``[A-Za-z0-9_-]{1,64}``.

    Raises:
        TypeError: ``master`` is not ``bytes``.
        VaultKeyError: ``master`` is not 64 bytes long, or ``kid`` is malformed.
    """

    __slots__ = ("_enc_key", "_kid", "_mac_key", "_master")

    def __init__(self, master: bytes, *, kid: str | None = None) -> None:
        if not isinstance(master, bytes):
            raise TypeError(f"master must be bytes, not {type(master).__name__}")
        if len(master) != MASTER_KEY_BYTES:
            raise VaultKeyError(
                f"a vault master key is {MASTER_KEY_BYTES} bytes, not {len(master)}",
                reason="length",
            )
        if kid is None:
            kid = b64url_encode(_derive(master, _INFO_KID, _KID_BYTES))
        elif not isinstance(kid, str) or not KID_PATTERN.match(kid):
            raise VaultKeyError("a key id is 1 to 64 of [A-Za-z0-9_-]", reason="kid")
        self._master = master
        self._kid = kid
        self._enc_key = _derive(master, _INFO_ENC, 32)
        self._mac_key = _derive(master, _INFO_MAC, 32)

    @classmethod
    def generate(cls, *, kid: str | None = None) -> VaultKey:
        """A new key from 64 bytes of the operating system's CSPRNG.

        Raises:
            VaultKeyError: ``kid`` is malformed.
        """
        return cls(secrets.token_bytes(MASTER_KEY_BYTES), kid=kid)

    @classmethod
    def from_base64(cls, text: str | bytes, *, kid: str | None = None) -> VaultKey:
        """Load a key from base64 (standard or URL-safe alphabet; padding optional).

        Raises:
            TypeError: ``text`` is neither ``str`` nor ``bytes``.
            VaultKeyError: ``text`` is not base64 of exactly 64 bytes, or ``kid`` is malformed.
        """
        if isinstance(text, bytes):
            try:
                text = text.decode("ascii")
            except UnicodeDecodeError:
                raise VaultKeyError("a vault key is base64 text", reason="malformed") from None
        if not isinstance(text, str):
            raise TypeError(f"text must be str or bytes, not {type(text).__name__}")
        cleaned = "".join(text.split()).translate(str.maketrans("-_", "+/")).rstrip("=")
        try:
            master = binascii.a2b_base64(cleaned + "=" * (-len(cleaned) % 4), strict_mode=True)
        except (binascii.Error, ValueError):
            # never chained or quoted: the text is the secret
            raise VaultKeyError("a vault key is base64 text", reason="malformed") from None
        return cls(master, kid=kid)

    def to_base64(self) -> str:
        """The master key as standard base64 (secret: store it like a password)."""
        return base64.b64encode(self._master).decode("ascii")

    @property
    def kid(self) -> str:
        """The key id written into every token this key seals."""
        return self._kid

    def __repr__(self) -> str:
        return f"VaultKey(kid={self._kid!r})"
