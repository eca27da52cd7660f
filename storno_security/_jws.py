"""Strict reading of compact JWS tokens, shared by the access-token, ID-token and license
verifiers.

Private to the library, like ``_compare``: capabilities import it, never each other. Each
function takes the caller's opaque error class and raises it with ``reason="malformed"`` (or
``"header"``), so every verifier keeps its own error and its own order of checks:

1. :func:`compact_parts`: a ``str`` (else ``TypeError``) of at most ``max_bytes`` ASCII
   characters, three non-empty dot-separated segments;
2. :func:`restricted_header`: the header segment, strict canonical base64url of a JSON object
   without duplicate members, holding nothing but ``alg``, ``kid`` and ``typ`` (so ``jku``,
   ``jwk``, ``x5u``, ``x5c``, ``crit``, ``b64`` ... are never followed or honoured);
3. :func:`segment_bytes` for the signature, :func:`segment_json` for the payload, the latter
   only after the signature is verified.

:func:`numeric_date` reads a ``NumericDate`` claim (RFC 7519 section 2) as an aware UTC datetime
when it is a JSON number a datetime can hold (years 1 to 9999), so no verifier's date
arithmetic can overflow on a signed ``10**30`` or ``-1e300``.

:data:`RSA_SIGNATURE_CHECKS` verifies an RSA signature for each algorithm of
:data:`RSA_ALGORITHMS` with padding and hash objects built once (what PyJWT's algorithm objects
do, without building them again on every call).

Checking ``alg``, ``kid`` and ``typ`` against what the verifier trusts stays with the
verifier: the token never chooses its algorithm or its key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, TypeGuard

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from storno_security._encoding import b64url_decode, json_object
from storno_security.errors import StornoSecurityError

__all__ = [
    "JWS_HEADER_MEMBERS",
    "MAX_NUMERIC_DATE",
    "MIN_NUMERIC_DATE",
    "RSA_ALGORITHMS",
    "RSA_SIGNATURE_CHECKS",
    "SignatureCheck",
    "compact_parts",
    "numeric_date",
    "numeric_date_in_range",
    "restricted_header",
    "segment_bytes",
    "segment_json",
]

#: The only header members a token may carry.
JWS_HEADER_MEMBERS: Final = frozenset({"alg", "kid", "typ"})
#: The RSA signature algorithms a verifier of RSA-keyed tokens may allow: with RSA keys only,
#: ``none`` and HS*/RS* confusion (the public key used as an HMAC secret) are impossible.
RSA_ALGORITHMS: Final = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})

#: The NumericDates a datetime can hold: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
MIN_NUMERIC_DATE: Final = -62_135_596_800
MAX_NUMERIC_DATE: Final = 253_402_300_799
# a tuple, not ``int | float``: that union is built anew on every call that spells it
_NUMBERS: Final = (int, float)


def numeric_date_in_range(value: object) -> TypeGuard[int | float]:
    """Whether ``value`` is a JSON number (not a bool) within years 1 to 9999: not huge, not
    negative beyond year 1, not NaN or infinite."""
    if type(value) is int:  # every NumericDate this library writes: one look
        return MIN_NUMERIC_DATE <= value <= MAX_NUMERIC_DATE
    if isinstance(value, bool) or not isinstance(value, _NUMBERS):
        return False
    return MIN_NUMERIC_DATE <= value <= MAX_NUMERIC_DATE  # NaN fails this too


def numeric_date(value: object) -> datetime | None:
    """``value`` as an aware UTC datetime, or ``None`` when it is not a NumericDate a datetime
    can hold (see :func:`numeric_date_in_range`; a float just under the end of 9999 that
    rounds into year 10000 too)."""
    if not numeric_date_in_range(value):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):  # pragma: no cover - platforms refusing t < 0
        return None


#: ``check(public_key, signing_input, signature)``: whether the signature is valid.
SignatureCheck = Callable[[rsa.RSAPublicKey, bytes, bytes], bool]

_HASHES: Final[Mapping[str, type[hashes.HashAlgorithm]]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}


def _rsa_signature_check(algorithm: str) -> SignatureCheck:
    """RFC 7518 section 3.3 (RS*: PKCS #1 v1.5) or 3.5 (PS*: PSS, MGF1 with the same hash,
    a salt as long as the hash)."""
    hash_type = _HASHES[algorithm[2:]]
    digest = hash_type()
    scheme: padding.AsymmetricPadding = (
        padding.PKCS1v15()
        if algorithm.startswith("RS")
        else padding.PSS(mgf=padding.MGF1(hash_type()), salt_length=digest.digest_size)
    )

    def check(public_key: rsa.RSAPublicKey, signing_input: bytes, signature: bytes) -> bool:
        try:
            public_key.verify(signature, signing_input, scheme, digest)
        except InvalidSignature:
            return False
        return True

    return check


#: The signature check of each algorithm of :data:`RSA_ALGORITHMS`.
RSA_SIGNATURE_CHECKS: Final[Mapping[str, SignatureCheck]] = MappingProxyType(
    {name: _rsa_signature_check(name) for name in sorted(RSA_ALGORITHMS)}
)


def compact_parts(
    token: object, *, max_bytes: int, error: type[StornoSecurityError]
) -> tuple[str, str, str]:
    """The header, payload and signature segments of ``token``.

    Raises:
        TypeError: ``token`` is not a ``str``.
        StornoSecurityError: ``error(reason="malformed")``: longer than ``max_bytes``,
            non-ASCII, or not three non-empty segments.
    """
    if not isinstance(token, str):
        raise TypeError(f"token must be str, not {type(token).__name__}")
    if len(token) > max_bytes or not token.isascii():
        raise error(reason="malformed")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise error(reason="malformed")
    return parts[0], parts[1], parts[2]


def segment_bytes(segment: str, error: type[StornoSecurityError]) -> bytes:
    """The bytes of a strict, canonical, unpadded base64url segment.

    Raises:
        StornoSecurityError: ``error(reason="malformed")``.
    """
    try:
        return b64url_decode(segment)
    except ValueError:
        raise error(reason="malformed") from None


def segment_json(segment: str, error: type[StornoSecurityError]) -> dict[str, Any]:
    """The JSON object (no duplicate members) a base64url segment encodes.

    Raises:
        StornoSecurityError: ``error(reason="malformed")``.
    """
    try:
        return json_object(b64url_decode(segment))
    except ValueError:
        raise error(reason="malformed") from None


def restricted_header(segment: str, error: type[StornoSecurityError]) -> dict[str, Any]:
    """The header object, holding no member but ``alg``, ``kid`` and ``typ``.

    Raises:
        StornoSecurityError: ``error(reason="malformed")`` for the encoding,
            ``error(reason="header")`` for any other member.
    """
    header = segment_json(segment, error)
    if not JWS_HEADER_MEMBERS.issuperset(header):
        raise error(reason="header")
    return header
