"""Opaque bearer tokens of the MFA capability (challenge and step-up tokens): 256 random bits,
43 URL-safe characters, stored only as SHA-256."""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Final

from storno_security.errors import MfaError

_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9_-]{43}")


def new_token() -> str:
    """A fresh token: 32 random bytes, base64url without padding."""
    return secrets.token_urlsafe(32)


def hash_token(token: object, error: type[MfaError]) -> str:
    """The SHA-256 (hex) under which ``token`` is stored; ``error`` if it is malformed.

    A malformed token is refused before any store lookup.
    """
    if not isinstance(token, str) or _TOKEN_RE.fullmatch(token) is None:
        raise error(reason="malformed")
    return hashlib.sha256(token.encode("ascii")).hexdigest()
