"""The passkey policy: frozen, validated, defaults from the spec (PK-1, PK-2, PK-3, MFA-5)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final
from urllib.parse import urlsplit

import attrs
from webauthn.helpers.cose import COSEAlgorithmIdentifier

from storno_security._validators import between, int_between, non_empty_str, non_empty_tuple_of

__all__ = ["MAX_CHALLENGE_LIFETIME", "SUPPORTED_ALGORITHMS", "PasskeyPolicy"]

#: PK-2: a challenge never lives longer than this.
MAX_CHALLENGE_LIFETIME: Final = timedelta(minutes=5)

#: COSE algorithms a policy may allow: EdDSA (-8), ES256 (-7), RS256 (-257).
SUPPORTED_ALGORITHMS: Final = frozenset(
    {
        COSEAlgorithmIdentifier.EDDSA,
        COSEAlgorithmIdentifier.ECDSA_SHA_256,
        COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,
    }
)

_RESIDENT_KEY = frozenset({"discouraged", "preferred", "required"})


def _check_rp_id(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError("rp_id must be a non-empty string (a registrable domain)")
    if value != value.lower() or any(c in value for c in ":/ @") or value.startswith("."):
        raise ValueError("rp_id must be a bare lower-case host name, e.g. 'example.eu'")


def _check_origins(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, tuple) or not value:
        raise ValueError("allowed_origins must be a non-empty tuple of origins")
    for origin in value:
        if not isinstance(origin, str):
            raise ValueError("allowed_origins must hold strings")
        parts = urlsplit(origin)
        local = parts.hostname in {"localhost", "127.0.0.1"}
        if parts.scheme != "https" and not (parts.scheme == "http" and local):
            raise ValueError(f"origin {origin!r} must be https (http only for localhost)")
        if not parts.hostname or parts.path or parts.query or parts.fragment:
            raise ValueError(f"origin {origin!r} must be scheme://host[:port] only")


def _check_resident_key(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in _RESIDENT_KEY:
        raise ValueError(f"resident_key must be one of {sorted(_RESIDENT_KEY)}")


def _check_bool(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{attribute.name} must be a bool")


@attrs.frozen(kw_only=True)
class PasskeyPolicy:
    """How passkey ceremonies are run and checked.

    User verification is always required (PK-3); there is no setting to weaken it.

    Attributes:
        rp_id: the relying-party id, a registrable domain such as ``example.eu`` (PK-1).
        rp_name: the name the browser shows.
        allowed_origins: origins a response may come from, e.g. ``("https://app.example.eu",)``
            (PK-1). https only, except ``http://localhost`` for development.
        challenge_lifetime: how long a challenge lives; at most 5 minutes (PK-2).
        challenge_bytes: random bytes per challenge; at least 32 (PK-2).
        algorithms: COSE algorithms accepted for new credentials, preferred first
            (default EdDSA, ES256, RS256).
        resident_key: ``"preferred"`` (default), ``"required"`` or ``"discouraged"``.
        passkey_satisfies_mfa: a passkey login needs no second factor (MFA-5, default ``True``).
        allow_cross_origin: accept ceremonies run in a cross-origin frame (``crossOrigin`` in
            the client data); default ``False``.
        max_response_bytes: a larger response (as JSON) is refused before parsing.
        max_name_length: longest friendly name of a passkey.
    """

    rp_id: str = attrs.field(validator=_check_rp_id)
    rp_name: str = attrs.field(validator=non_empty_str)
    allowed_origins: tuple[str, ...] = attrs.field(validator=_check_origins)
    challenge_lifetime: timedelta = attrs.field(
        default=MAX_CHALLENGE_LIFETIME,
        validator=between(timedelta(seconds=30), MAX_CHALLENGE_LIFETIME),
    )
    challenge_bytes: int = attrs.field(
        default=32, validator=int_between(32, 64, wrong_type=ValueError)
    )
    algorithms: tuple[int, ...] = attrs.field(
        default=(
            COSEAlgorithmIdentifier.EDDSA,
            COSEAlgorithmIdentifier.ECDSA_SHA_256,
            COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,
        ),
        validator=non_empty_tuple_of(SUPPORTED_ALGORITHMS),
    )
    resident_key: str = attrs.field(default="preferred", validator=_check_resident_key)
    passkey_satisfies_mfa: bool = attrs.field(default=True, validator=_check_bool)
    allow_cross_origin: bool = attrs.field(default=False, validator=_check_bool)
    max_response_bytes: int = attrs.field(
        default=65_536, validator=int_between(4096, 1 << 20, wrong_type=ValueError)
    )
    max_name_length: int = attrs.field(
        default=64, validator=int_between(1, 255, wrong_type=ValueError)
    )

    @property
    def timeout_ms(self) -> int:
        """The browser's ceremony timeout hint: the challenge lifetime in milliseconds."""
        return int(self.challenge_lifetime.total_seconds() * 1000)
