"""Strict base64url and JSON, shared by every capability that reads JOSE-style text.

Private to the library, like ``_compare``: capabilities import it, never each other.

* :func:`b64url_decode` takes only the URL-safe alphabet, no padding, no whitespace, and only
  the canonical spelling (the unused low bits of the last character are zero), so one byte
  string has exactly one accepted text. It is the token verifier's hot path: an ASCII encode,
  a byte-table translate and one C-level decode, then an O(1) look at the last character
  instead of re-encoding.
* :func:`json_object` reads UTF-8 JSON text that must be one object without duplicate member
  names (RFC 7515 section 5.2 / RFC 8259 section 4: a parser that keeps the last duplicate
  and another that keeps the first would read two different tokens), and without the
  ``NaN``/``Infinity`` literals Python's parser takes but JSON does not have.

Every refusal is a :class:`ValueError` carrying no input; callers turn it into their own
opaque error.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Final

__all__ = [
    "b64url_decode",
    "b64url_encode",
    "b64url_uint",
    "json_object",
]

_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# '-' and '_' become the standard alphabet; '+', '/' and '=' become a character that strict
# decoding refuses, so only the URL-safe alphabet without padding gets through.
# A byte table: translating bytes with it is one C loop, where a str table costs a dictionary
# lookup per character (a 342-character RSA signature took microseconds).
_URLSAFE_TO_STD: Final = bytes.maketrans(b"-_+/=", b"+/!!!")
# The padding to add for a length of 0, 1, 2, 3 modulo 4 (1 is refused before use).
_PADDING: Final = (b"", b"", b"==", b"=")
# For a length of 2 (3) modulo 4 the last character carries 4 (2) unused low bits; in the
# canonical spelling they are zero, so it is one of every 16th (4th) alphabet character.
_CANONICAL_LAST: Final[tuple[frozenset[str], ...]] = (
    frozenset(),
    frozenset(),
    frozenset(_ALPHABET[::16]),
    frozenset(_ALPHABET[::4]),
)


def b64url_encode(data: bytes) -> str:
    """``data`` as unpadded base64url text (RFC 4648 section 5, RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_uint(value: int) -> str:
    """A non-negative integer as the base64url of its shortest big-endian bytes (RFC 7518 §2).

    Zero is one zero byte (``"AA"``).

    Raises:
        OverflowError: ``value`` is negative.
    """
    return b64url_encode(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


def b64url_decode(text: str) -> bytes:
    """Decode strict, canonical, unpadded base64url.

    Raises:
        ValueError: a character outside the URL-safe alphabet (``+``, ``/``, ``=``, whitespace,
            non-ASCII), a length of 1 modulo 4, or non-zero unused bits in the last character.
    """
    remainder = len(text) % 4
    if remainder == 1:
        raise ValueError("base64url length")
    try:
        raw = binascii.a2b_base64(
            text.encode("ascii").translate(_URLSAFE_TO_STD) + _PADDING[remainder],
            strict_mode=True,
        )
    except ValueError:  # binascii.Error, or a non-ASCII str (UnicodeEncodeError)
        raise ValueError("base64url alphabet") from None
    if remainder and text[-1] not in _CANONICAL_LAST[remainder]:
        raise ValueError("base64url not canonical")  # the same bytes spelt another way
    return raw


class _DuplicateMemberError(ValueError):
    pass


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _DuplicateMemberError
    return result


class _NonJsonConstantError(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _NonJsonConstantError


# One decoder, built once: ``json.loads`` with a hook builds a new one on every call.
_DECODER: Final = json.JSONDecoder(object_pairs_hook=_unique_members, parse_constant=_no_constant)


def json_object(raw: bytes) -> dict[str, Any]:
    """Parse UTF-8 JSON text that must be one object, every member name once, at every depth.

    Raises:
        ValueError: not UTF-8 (a byte order mark included), not JSON (``NaN``, ``Infinity``
            and ``-Infinity`` included), not an object, a duplicate member name, or nested
            too deep.
    """
    try:
        text = raw.decode("utf-8")
        # One object with nothing around it (what a token carries) in one scan; anything else
        # (white space around, trailing data, not JSON) takes decode(), which says which.
        value, end = _DECODER.raw_decode(text) if text[:1] == "{" else (None, -1)
        if end != len(text):
            value = _DECODER.decode(text)
    except _DuplicateMemberError:
        raise ValueError("JSON object with a duplicate member name") from None
    except RecursionError:
        raise ValueError("JSON nested too deep") from None
    except ValueError:  # UnicodeDecodeError and JSONDecodeError too; never echo the input
        raise ValueError("not a JSON object") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value
