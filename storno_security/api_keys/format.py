"""The API-key format (KEY-1): generation, parsing and hashing.

A key looks like ``af_0aB3dE5fG7hJ_<43 characters><6 characters>``::

    af_ <key id: 12 base62> _ <secret: 43 base62> <checksum: 6 base62>

* ``af_`` lets secret scanners (and people) recognise a leaked key.
* The **key id** (12 random base62 characters, 71 bits) is public: it names the key in listings
  and logs and is the store's lookup key.
* The **secret** is 43 base62 characters drawn uniformly from 62^43 > 2^256 values: at least
  256 bits of randomness.
* The **checksum** is the CRC-32 of everything before it (``af_<id>_<secret>``, ASCII), written
  as 6 base62 digits, zero-padded. CRC-32 detects every error confined to 32 consecutive bits,
  so any single mistyped character (and any error inside one character) is caught by
  :func:`parse_api_key` before any store lookup; a scanner can check it offline. It is not a
  security measure: anybody can compute it. The secret is.

Legacy keys of the platform's older form, ``af_`` + 64 lowercase hex characters, carry neither
id nor checksum. They are stored, like new keys, as the SHA-256 of the whole key; their key id
is derived from that hash (:func:`legacy_key_id`), so both forms need exactly one hash and one
lookup by id.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib
from collections.abc import Callable
from typing import Final

import attrs

from storno_security.errors import InvalidApiKeyError

__all__ = [
    "API_KEY_PREFIX",
    "CHECKSUM_LENGTH",
    "KEY_ID_LENGTH",
    "KEY_LENGTH",
    "LEGACY_KEY_ID_PREFIX",
    "LEGACY_KEY_LENGTH",
    "SECRET_LENGTH",
    "GeneratedApiKey",
    "ParsedApiKey",
    "generate_api_key",
    "hash_api_key",
    "is_legacy_key_id",
    "legacy_key_id",
    "parse_api_key",
]

#: Every API key starts with this (KEY-1); a request carries it as ``Authorization: af_...``.
API_KEY_PREFIX: Final = "af_"
KEY_ID_LENGTH: Final = 12
SECRET_LENGTH: Final = 43
CHECKSUM_LENGTH: Final = 6
#: The length of a key of the current form.
KEY_LENGTH: Final = len(API_KEY_PREFIX) + KEY_ID_LENGTH + 1 + SECRET_LENGTH + CHECKSUM_LENGTH
#: The length of a key of the older form (``af_`` + 64 hex characters).
LEGACY_KEY_LENGTH: Final = len(API_KEY_PREFIX) + 64
#: Key ids of legacy keys start with this; ids of current keys never contain ``-``.
LEGACY_KEY_ID_PREFIX: Final = "legacy-"

_BASE62: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Two base62 digits at a time: CRC-32 < 62^6, so three steps write the checksum.
_PAIRS: Final = tuple(a + b for a in _BASE62 for b in _BASE62)
_KEY_RE: Final = re.compile(r"af_([0-9A-Za-z]{12})_[0-9A-Za-z]{49}")
_LEGACY_RE: Final = re.compile(r"af_[0-9a-f]{64}")
_HASH_RE: Final = re.compile(r"[0-9a-f]{64}")
_CHECKSUM_AT: Final = KEY_LENGTH - CHECKSUM_LENGTH
_SECRET_SPACE: Final = 62**SECRET_LENGTH
_ID_SPACE: Final = 62**KEY_ID_LENGTH


def _base62(value: int, width: int) -> str:
    """``value`` as ``width`` base62 digits, most significant first (two at a time)."""
    pairs, odd = divmod(width, 2)
    parts = []
    for _ in range(pairs):
        value, pair = divmod(value, 3844)
        parts.append(_PAIRS[pair])
    if odd:
        parts.append(_BASE62[value % 62])
    return "".join(reversed(parts))


def _checksum(body: bytes) -> str:
    crc = zlib.crc32(body)
    high, rest = divmod(crc, 3844 * 3844)
    middle, low = divmod(rest, 3844)
    return _PAIRS[high] + _PAIRS[middle] + _PAIRS[low]


def hash_api_key(key: str) -> str:
    """The SHA-256 (lowercase hex) of the whole key: the only form in which keys are stored.

    No format check: call :func:`parse_api_key` to check a presented key.

    Raises:
        TypeError: ``key`` is not a string.
        UnicodeEncodeError: ``key`` is not ASCII.
    """
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, not {type(key).__name__}")
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def legacy_key_id(key_hash: str) -> str:
    """The key id under which a legacy key with SHA-256 ``key_hash`` is stored.

    It is ``legacy-`` followed by the first 24 hex digits of the hash: public, since nobody can
    find a 256-bit key from part of its hash, and never equal to the id of a current key.

    Raises:
        ValueError: ``key_hash`` is not 64 lowercase hex digits.
    """
    if not isinstance(key_hash, str) or _HASH_RE.fullmatch(key_hash) is None:
        raise ValueError("key_hash must be a SHA-256 as 64 lowercase hex digits")
    return LEGACY_KEY_ID_PREFIX + key_hash[:24]


def is_legacy_key_id(key_id: str) -> bool:
    """Whether ``key_id`` names a key of the older form."""
    return key_id.startswith(LEGACY_KEY_ID_PREFIX)


@attrs.frozen
class ParsedApiKey:
    """A presented key that has the right shape (and, for current keys, the right checksum).

    Attributes:
        key_id: the store's lookup key.
        key_hash: SHA-256 (hex) of the whole key, to compare with the stored one.
        legacy: whether the key has the older form.
    """

    key_id: str
    key_hash: str = attrs.field(repr=False)
    legacy: bool = False


@attrs.frozen
class GeneratedApiKey:
    """A new key and what is stored of it.

    Attributes:
        key: the full key (secret): show it once, never store it.
        key_id: its public id.
        key_hash: SHA-256 (hex) of ``key``: what the store keeps.
    """

    key: str = attrs.field(repr=False)
    key_id: str
    key_hash: str = attrs.field(repr=False)


def generate_api_key() -> GeneratedApiKey:
    """Make a new key of the current form from the operating system's CSPRNG."""
    return _generate_api_key(randbelow=secrets.randbelow)


def _generate_api_key(*, randbelow: Callable[[int], int]) -> GeneratedApiKey:
    """Make a key from ``randbelow(62**12)`` (the id) and ``randbelow(62**43)`` (the secret).

    :func:`generate_api_key` passes :func:`secrets.randbelow`; the known-answer tests pass
    fixed draws, and a recorder that checks the ranges asked for.

    Raises:
        ValueError: ``randbelow`` returned a value outside ``[0, bound)``.
    """
    id_value = randbelow(_ID_SPACE)
    secret_value = randbelow(_SECRET_SPACE)
    if not (0 <= id_value < _ID_SPACE and 0 <= secret_value < _SECRET_SPACE):
        raise ValueError("randbelow returned a value out of range")
    key_id = _base62(id_value, KEY_ID_LENGTH)
    secret = _base62(secret_value, SECRET_LENGTH)
    body = f"{API_KEY_PREFIX}{key_id}_{secret}"
    key = body + _checksum(body.encode("ascii"))
    return GeneratedApiKey(key=key, key_id=key_id, key_hash=hash_api_key(key))


def _parse(key: object, accept_legacy: bool) -> tuple[str, str]:
    """The hot path of :func:`parse_api_key`: ``(key_id, key_hash)`` without an object."""
    if type(key) is not str:
        raise InvalidApiKeyError(reason="malformed")
    length = len(key)
    if length == KEY_LENGTH:
        match = _KEY_RE.fullmatch(key)
        if match is None:
            raise InvalidApiKeyError(reason="malformed")
        data = key.encode("ascii")  # the pattern admits ASCII only
        if _checksum(data[:_CHECKSUM_AT]) != key[_CHECKSUM_AT:]:
            raise InvalidApiKeyError(reason="malformed")
        return match[1], hashlib.sha256(data).hexdigest()
    if length == LEGACY_KEY_LENGTH and accept_legacy and _LEGACY_RE.fullmatch(key) is not None:
        key_hash = hashlib.sha256(key.encode("ascii")).hexdigest()
        return LEGACY_KEY_ID_PREFIX + key_hash[:24], key_hash
    raise InvalidApiKeyError(reason="malformed")


def parse_api_key(key: str, *, accept_legacy: bool = True) -> ParsedApiKey:
    """Check the shape and checksum of a presented key, and hash it. No store is consulted.

    Args:
        key: the presented key, as KEY-4 sends it: the whole ``Authorization`` header value,
            which is the key itself with no scheme (``Bearer af_...`` is refused as malformed).
        accept_legacy: whether the older form (``af_`` + 64 hex) is accepted.

    Returns:
        The key id to look up and the hash to compare.

    Raises:
        InvalidApiKeyError: ``reason="malformed"``: not a string, wrong length, a character
            outside the alphabet, a wrong checksum, or a legacy key when they are refused.
    """
    key_id, key_hash = _parse(key, accept_legacy)
    return ParsedApiKey(key_id=key_id, key_hash=key_hash, legacy=is_legacy_key_id(key_id))
