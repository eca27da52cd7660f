"""The token policy: frozen, validated, defaults from the spec (JWT-1, JWT-2, REF-1)."""

from __future__ import annotations

from datetime import timedelta

import attrs

from storno_security._jws import RSA_ALGORITHMS as _RSA_ALGORITHMS
from storno_security._validators import between, int_between, non_empty_str, non_empty_tuple_of
from storno_security.tokens.keys import MIN_RSA_BITS

__all__ = ["RSA_ALGORITHMS", "TokenPolicy"]

#: The algorithms a policy may allow: RSA signatures only, so a key ring of RSA keys can never be
#: used as an HMAC secret (HS*/RS* confusion) and ``none`` is impossible.
RSA_ALGORITHMS = _RSA_ALGORITHMS

#: The most clock skew a policy may tolerate (JWT-2).
MAX_LEEWAY = timedelta(seconds=60)


@attrs.frozen(kw_only=True)
class TokenPolicy:
    """How access and refresh tokens are made and checked.

    Attributes:
        issuer: the ``iss`` claim written and required.
        audience: the ``aud`` claim written and required.
        access_token_lifetime: default 1 hour (JWT-1).
        refresh_token_lifetime: absolute lifetime of a refresh family, default 30 days (REF-1).
        leeway: clock skew tolerated on ``exp``/``nbf``/``iat``; at most 60 s (JWT-2).
        algorithms: the allow-list; the first one signs. RSA algorithms only. Default RS256.
        min_rsa_bits: weakest key accepted; never below 2048.
        verified_cache_size: entries in the verified-token cache; 0 turns the cache off.
        max_token_bytes: longer access tokens are refused before any parsing.
    """

    issuer: str = attrs.field(validator=non_empty_str)
    audience: str = attrs.field(validator=non_empty_str)
    access_token_lifetime: timedelta = attrs.field(
        default=timedelta(hours=1), validator=between(timedelta(seconds=30), timedelta(days=1))
    )
    refresh_token_lifetime: timedelta = attrs.field(
        default=timedelta(days=30), validator=between(timedelta(minutes=5), timedelta(days=400))
    )
    leeway: timedelta = attrs.field(
        default=timedelta(seconds=30), validator=between(timedelta(0), MAX_LEEWAY)
    )
    algorithms: tuple[str, ...] = attrs.field(
        default=("RS256",), validator=non_empty_tuple_of(RSA_ALGORITHMS)
    )
    min_rsa_bits: int = attrs.field(default=MIN_RSA_BITS)
    verified_cache_size: int = attrs.field(default=10_000)
    max_token_bytes: int = attrs.field(
        default=8192, validator=int_between(512, 65536, wrong_type=ValueError)
    )

    @min_rsa_bits.validator
    def _check_bits(self, attribute: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or value < MIN_RSA_BITS:
            raise ValueError(f"min_rsa_bits must be an int of at least {MIN_RSA_BITS}")

    @verified_cache_size.validator
    def _check_cache(self, attribute: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or not 0 <= value <= 10_000_000:
            raise ValueError("verified_cache_size must be an int between 0 and 10,000,000")

    @property
    def signing_algorithm(self) -> str:
        """The algorithm new tokens are signed with."""
        return self.algorithms[0]
