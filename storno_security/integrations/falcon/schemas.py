"""JSON Schema pieces shared by route modules (request fields and answers), and the renderers
of the answers they describe. A field is declared here once; the route that uses it
validates with it and publishes it in ``/openapi.json``."""

from __future__ import annotations

from typing import Any

from storno_security.integrations.falcon.openapi import obj

__all__ = [
    "CODE",
    "COOKIE",
    "CREDENTIAL",
    "EMAIL",
    "END",
    "LINE_PATTERN",
    "MESSAGE",
    "NAME",
    "NAME_PATTERN",
    "NULLABLE_STRING",
    "PASSWORD",
    "REAUTH_FIELDS",
    "STEP_UP",
    "TEXT",
    "TIME",
    "TOKENS",
    "USER",
    "UUID",
    "line",
    "string",
]

_NO_NUL = "^[^\\x00]*$"


def string(
    max_length: int, *, min_length: int = 1, pattern: str = _NO_NUL, **more: Any
) -> dict[str, Any]:
    """A string field: length bounds and no NUL unless another pattern is given."""
    return {
        "type": "string",
        "minLength": min_length,
        "maxLength": max_length,
        "pattern": pattern,
        **more,
    }


# Names (display name, passkey and API-key labels): printable Latin, Greek and Cyrillic letters,
# digits, punctuation and spaces; at least one character that is not a space.
_NAME_CHARS = (
    "\\u0021-\\u007e\\u00a1-\\u00ac\\u00ae-\\u024f\\u0391-\\u03a1\\u03a3-\\u03ce\\u0400-\\u04ff"
)
#: The end of the text: jsonschema's ``pattern`` searches, and ``$`` would match before a final
#: newline.
END = "(?![\\s\\S])"
NAME_PATTERN = f"^[ {_NAME_CHARS}]*[{_NAME_CHARS}][ {_NAME_CHARS}]*{END}"

TEXT = string(1024)
EMAIL = string(320)
PASSWORD = string(4096)
CODE = string(64)
NAME = string(200, pattern=NAME_PATTERN)
UUID = string(36, min_length=36, pattern="^[0-9a-fA-F-]{36}$")
MESSAGE = obj({"message": {"type": "string"}}, required=("message",))
COOKIE = {"type": "boolean", "description": "Put the refresh token in an HttpOnly cookie."}
CREDENTIAL = {"type": "object", "description": "The WebAuthn PublicKeyCredential as JSON."}
STEP_UP = string(512, description="From POST /api/v1/mfa/step-up, for this very act.")

#: The re-authentication fields of a sensitive act (ACC-6): which one is needed depends on the
#: account (MFA on: the step-up token; else the current password; else a recent login).
REAUTH_FIELDS: dict[str, Any] = {
    "current_password": string(4096, description="For an account with a password, MFA off."),
    "step_up_token": STEP_UP,
}

USER = obj(
    {
        "id": {"type": "string"},
        "email": {"type": ["string", "null"]},
        "email_confirmed": {"type": "boolean"},
        "name": {"type": "string"},
        "mfa_enabled": {"type": "boolean"},
        "has_password": {"type": "boolean"},
        "created_at": {"type": "string", "format": "date-time"},
    },
    required=("id", "email", "name", "mfa_enabled", "has_password", "created_at"),
)

TOKENS = obj(
    {
        "access_token": {"type": "string"},
        "token_type": {"const": "Bearer"},
        "expires_in": {"type": "integer"},
        "refresh_token": {"type": "string"},
        "refresh_expires_at": {"type": "string", "format": "date-time"},
        "user": USER,
        "organization_id": {"type": "string"},
        "backup_codes_left": {"type": "integer"},
    },
    required=("access_token", "token_type", "expires_in", "refresh_expires_at"),
)


# --- one-line texts, codes, lists (companies, invoices, members, invitations) ----------------

#: The true end of the text: ``$`` would also match before a final newline.
#: One line: no control character anywhere, at least one character that is not a space.
LINE_PATTERN = "^(?![\\s\\S]*[\\x00-\\x1f\\x7f])[\\s\\S]*\\S"
NULLABLE_STRING = {"type": ["string", "null"]}
TIME = {"type": "string", "format": "date-time"}


def line(max_length: int) -> dict[str, Any]:
    """A one-line text of 1 to ``max_length`` characters, not blank."""
    return string(max_length, pattern=LINE_PATTERN)
