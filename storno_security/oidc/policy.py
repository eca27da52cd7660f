"""The Google ID-token policy: frozen, validated, secure defaults."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

import attrs

from storno_security._jws import RSA_ALGORITHMS as _RSA_ALGORITHMS
from storno_security._validators import between, int_between, non_empty_tuple_of

__all__ = ["GOOGLE_ISSUERS", "MAX_LEEWAY", "RSA_ALGORITHMS", "GoogleIdTokenPolicy"]

#: The two spellings of Google's issuer.
GOOGLE_ISSUERS: Final = ("https://accounts.google.com", "accounts.google.com")
#: The algorithms a policy may allow: RSA signatures only, so ``none`` and HS*/RS* confusion are
#: impossible whatever a token's header says.
RSA_ALGORITHMS: Final = _RSA_ALGORITHMS
#: The most clock skew a policy may tolerate.
MAX_LEEWAY: Final = timedelta(minutes=2)
#: The weakest RSA key accepted from a JWKS.
MIN_RSA_BITS: Final = 2048


def _non_empty_strings(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, tuple) or not value:
        raise ValueError(f"{attribute.name} must be a non-empty tuple of strings")
    if not all(isinstance(item, str) and item.strip() for item in value):
        raise ValueError(f"{attribute.name} must hold non-empty strings")


def _optional_strings(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _non_empty_strings(instance, attribute, value)


@attrs.frozen(kw_only=True)
class GoogleIdTokenPolicy:
    """How Google ID tokens are checked.

    Attributes:
        client_ids: the OAuth client ids of this application; ``aud`` must be one of them.
        issuers: accepted ``iss`` values; default Google's two spellings.
        algorithms: the allow-list; RSA only; default ``("RS256",)``. The token's header never
            chooses.
        leeway: clock skew tolerated on ``exp``/``iat``/``nbf``; at most 2 minutes
            (default 60 s).
        hosted_domains: when set, the ``hd`` claim (Google Workspace domain) must be one of these.
        max_token_bytes: longer tokens are refused before any parsing.
    """

    client_ids: tuple[str, ...] = attrs.field(validator=_non_empty_strings)
    issuers: tuple[str, ...] = attrs.field(default=GOOGLE_ISSUERS, validator=_non_empty_strings)
    algorithms: tuple[str, ...] = attrs.field(
        default=("RS256",), validator=non_empty_tuple_of(RSA_ALGORITHMS)
    )
    leeway: timedelta = attrs.field(
        default=timedelta(seconds=60), validator=between(timedelta(0), MAX_LEEWAY)
    )
    hosted_domains: tuple[str, ...] | None = attrs.field(default=None, validator=_optional_strings)
    max_token_bytes: int = attrs.field(
        default=8192, validator=int_between(512, 65536, wrong_type=ValueError)
    )
