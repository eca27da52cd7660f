"""The security event record and its checks live in :mod:`storno_security.events` (a shared
module every capability may use); this module re-exports them for the audit capability."""

from storno_security.events import (
    DETAIL_KEYS,
    ID_DETAIL_KEYS,
    MAX_DETAIL_KEYS,
    MAX_TEXT_VALUE,
    Outcome,
    Scalar,
    SecurityEvent,
    SecurityEventType,
    looks_like_secret,
    personal_key_name,
    secret_key_name,
    validate_details,
)

__all__ = [
    "DETAIL_KEYS",
    "ID_DETAIL_KEYS",
    "MAX_DETAIL_KEYS",
    "MAX_TEXT_VALUE",
    "Outcome",
    "Scalar",
    "SecurityEvent",
    "SecurityEventType",
    "looks_like_secret",
    "personal_key_name",
    "secret_key_name",
    "validate_details",
]
