"""The vault key ring: seal and open secrets (VLT-1..VLT-3).

A sealed token is ``v1.<kid>.<body>``, where ``body`` is the unpadded base64url encoding of
``IV (16) || AES-256-CBC ciphertext || HMAC-SHA256 tag (32)``. The tag covers the length-
prefixed fields ``"storno-vault"``, version, key id, IV, ciphertext and associated data
(encrypt-then-MAC). Opening checks, in order: size, shape, strict and canonical base64url,
version, key id, lengths, then the tag in constant time, and only then decrypts. Every failure
is one :class:`~storno_security.errors.InvalidCiphertextError`; its ``reason`` is for logs.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from types import MappingProxyType
from typing import Final

from storno_security._encoding import b64url_decode, b64url_encode
from storno_security.errors import InvalidCiphertextError, VaultKeyError
from storno_security.vault._layers import (
    BLOCK_BYTES,
    TAG_BYTES,
    _cbc_decrypt,
    _cbc_encrypt,
    _frame,
    _hmac_sha256,
    _hmac_sha256_verify,
)
from storno_security.vault.keys import KID_PATTERN, VaultKey

__all__ = ["TOKEN_VERSION", "VaultKeyRing"]

#: The version written into new tokens; the only one opened.
TOKEN_VERSION: Final = "v1"  # noqa: S105 - a format version, not a secret
_VERSION_BYTES: Final = TOKEN_VERSION.encode("ascii")
_CONTEXT: Final = b"storno-vault"
_MIN_BODY: Final = BLOCK_BYTES * 2 + TAG_BYTES  # IV, one block, tag


def _as_bytes(name: str, value: bytes | str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"{name} must be bytes or str, not {type(value).__name__}")


def _mac_input(kid: str, iv: bytes, ciphertext: bytes, associated_data: bytes) -> bytes:
    """What the tag covers: every field length-prefixed, the associated data last."""
    fields = (_CONTEXT, _VERSION_BYTES, kid.encode("ascii"), iv, ciphertext, associated_data)
    return _frame(*fields)


def _seal(
    key: VaultKey,
    plaintext: bytes,
    associated_data: bytes,
    *,
    random_bytes: Callable[[int], bytes],
) -> str:
    """Seal under ``key`` with an IV from ``random_bytes`` (the token format, VLT-1).

    The one place a token is made. :meth:`VaultKeyRing.seal` passes
    :func:`secrets.token_bytes`; the known-answer tests pass a fixed IV, and a recorder that
    checks how many random bytes are asked for.

    Raises:
        ValueError: ``random_bytes`` returned other than 16 bytes.
    """
    iv = random_bytes(BLOCK_BYTES)
    if not isinstance(iv, bytes) or len(iv) != BLOCK_BYTES:
        raise ValueError(f"an IV is {BLOCK_BYTES} bytes")
    ciphertext = _cbc_encrypt(key._enc_key, iv, plaintext)
    tag = _hmac_sha256(key._mac_key, _mac_input(key.kid, iv, ciphertext, associated_data))
    return f"{TOKEN_VERSION}.{key.kid}.{b64url_encode(iv + ciphertext + tag)}"


class VaultKeyRing:
    """One active key that seals, plus decrypt-only older keys (VLT-3).

    The ring is immutable: to rotate keys, build a new ring with the new key active and the old
    one among ``decrypt_only``, re-seal stored tokens with :meth:`rotate` (those for which
    :meth:`needs_rotation` is true), then drop the old key.

    Args:
        active: the key that seals new secrets (it also opens).
        decrypt_only: older keys that still open what they sealed.
        max_plaintext_bytes: the largest secret sealed or opened (default 64 KiB); longer
            tokens are refused before any decoding.

    Raises:
        TypeError: a key is not a :class:`VaultKey`.
        ValueError: ``max_plaintext_bytes`` is not a positive int of at most 16 MiB.
        VaultKeyError: two keys share one key id.
    """

    __slots__ = ("_active", "_keys", "_max_plaintext", "_max_token_chars")

    def __init__(
        self,
        active: VaultKey,
        *,
        decrypt_only: Iterable[VaultKey] = (),
        max_plaintext_bytes: int = 64 * 1024,
    ) -> None:
        if isinstance(max_plaintext_bytes, bool) or not isinstance(max_plaintext_bytes, int):
            raise ValueError("max_plaintext_bytes must be an int")
        if not 1 <= max_plaintext_bytes <= 16 * 1024 * 1024:
            raise ValueError("max_plaintext_bytes must be between 1 and 16 MiB")
        keys: dict[str, VaultKey] = {}
        for key in (active, *decrypt_only):
            if not isinstance(key, VaultKey):
                raise TypeError(f"vault keys must be VaultKey, not {type(key).__name__}")
            if key.kid in keys:
                raise VaultKeyError(f"two vault keys have the id {key.kid!r}", reason="duplicate")
            keys[key.kid] = key
        self._active = active
        self._keys = MappingProxyType(keys)
        self._max_plaintext = max_plaintext_bytes
        body = BLOCK_BYTES + (max_plaintext_bytes // BLOCK_BYTES + 1) * BLOCK_BYTES + TAG_BYTES
        self._max_token_chars = len(TOKEN_VERSION) + 66 + (body * 4 + 2) // 3

    @classmethod
    def from_base64(
        cls, active: str, *, decrypt_only: Iterable[str] = (), max_plaintext_bytes: int = 64 * 1024
    ) -> VaultKeyRing:
        """A ring of keys loaded with :meth:`VaultKey.from_base64` (ids derived).

        Raises:
            VaultKeyError: a key is not base64 of 64 bytes, or two keys are the same.
        """
        return cls(
            VaultKey.from_base64(active),
            decrypt_only=[VaultKey.from_base64(text) for text in decrypt_only],
            max_plaintext_bytes=max_plaintext_bytes,
        )

    def __repr__(self) -> str:
        return f"VaultKeyRing(active={self._active.kid!r}, keys={sorted(self._keys)!r})"

    @property
    def active_kid(self) -> str:
        """The id of the key that seals."""
        return self._active.kid

    @property
    def kids(self) -> tuple[str, ...]:
        """Every key id that opens, active first."""
        active = self._active.kid
        return (active, *sorted(k for k in self._keys if k != active))

    def seal(self, plaintext: bytes | str, *, associated_data: bytes | str) -> str:
        """Encrypt and authenticate ``plaintext`` under the active key (VLT-1, VLT-2).

        Args:
            plaintext: the secret; ``str`` is sealed as its UTF-8 bytes.
            associated_data: what the secret belongs to (e.g. ``b"company:42/s3_secret"``);
                not stored in the token, and needed again, byte for byte, to open it.

        Returns:
            The token ``v1.<kid>.<base64url>``, safe to store in a text column.

        Raises:
            TypeError: ``plaintext`` or ``associated_data`` is neither ``bytes`` nor ``str``.
            ValueError: ``plaintext`` is longer than ``max_plaintext_bytes``.
        """
        data = _as_bytes("plaintext", plaintext)
        ad = _as_bytes("associated_data", associated_data)
        if len(data) > self._max_plaintext:
            raise ValueError(f"plaintext is longer than {self._max_plaintext} bytes")
        return _seal(self._active, data, ad, random_bytes=secrets.token_bytes)

    def open(self, token: str, *, associated_data: bytes | str) -> bytes:
        """Check and decrypt a token sealed by any key of the ring (VLT-1..VLT-3).

        Args:
            token: what :meth:`seal` returned.
            associated_data: the same associated data it was sealed with.

        Returns:
            The plaintext bytes.

        Raises:
            TypeError: ``token`` is not ``str``, or ``associated_data`` neither ``bytes`` nor
                ``str``.
            InvalidCiphertextError: for every way the token can be wrong (``reason``:
                ``malformed``, ``version``, ``unknown_key``, ``mac``, ``padding``).
        """
        ad = _as_bytes("associated_data", associated_data)
        key, iv, ciphertext, tag = self._parse(token)
        # The tag first, in constant time: nothing is decrypted before it matches.
        _hmac_sha256_verify(key._mac_key, _mac_input(key.kid, iv, ciphertext, ad), tag)
        plaintext = _cbc_decrypt(key._enc_key, iv, ciphertext)
        if len(plaintext) > self._max_plaintext:
            raise InvalidCiphertextError(reason="malformed")
        return plaintext

    def needs_rotation(self, token: str) -> bool:
        """Whether ``token`` was sealed by another key than the active one.

        Only the token's header is read; nothing is verified (use :meth:`rotate` or
        :meth:`open` for that).

        Raises:
            TypeError: ``token`` is not ``str``.
            InvalidCiphertextError: the token is not shaped like a sealed token
                (``malformed``, ``version``).
        """
        kid = self._header(token)[0]
        return kid != self._active.kid

    def rotate(self, token: str, *, associated_data: bytes | str) -> str:
        """Open ``token`` with whichever key sealed it and seal it again under the active key.

        The new token has a fresh IV and the same associated data.

        Raises:
            TypeError: ``token`` is not ``str``, or ``associated_data`` neither ``bytes`` nor
                ``str``.
            InvalidCiphertextError: ``token`` does not open (see :meth:`open`).
        """
        return self.seal(
            self.open(token, associated_data=associated_data), associated_data=associated_data
        )

    def _header(self, token: str) -> tuple[str, str]:
        if not isinstance(token, str):
            raise TypeError(f"token must be str, not {type(token).__name__}")
        if len(token) > self._max_token_chars or not token.isascii():
            raise InvalidCiphertextError(reason="malformed")
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidCiphertextError(reason="malformed")
        version, kid, body = parts
        if version != TOKEN_VERSION:
            raise InvalidCiphertextError(reason="version")
        if not KID_PATTERN.match(kid):
            raise InvalidCiphertextError(reason="malformed")
        return kid, body

    def _parse(self, token: str) -> tuple[VaultKey, bytes, bytes, bytes]:
        kid, body = self._header(token)
        key = self._keys.get(kid)
        if key is None:
            raise InvalidCiphertextError(reason="unknown_key")
        try:
            # strict and canonical: unused low bits set in the last character are refused
            raw = b64url_decode(body)
        except ValueError:
            raise InvalidCiphertextError(reason="malformed") from None
        if len(raw) < _MIN_BODY or (len(raw) - TAG_BYTES) % BLOCK_BYTES:
            raise InvalidCiphertextError(reason="malformed")
        iv = raw[:BLOCK_BYTES]
        ciphertext = raw[BLOCK_BYTES:-TAG_BYTES]
        tag = raw[-TAG_BYTES:]
        return key, iv, ciphertext, tag
