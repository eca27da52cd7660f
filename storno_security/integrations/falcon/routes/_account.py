"""What the account modules share: the re-authentication fields of a sensitive act (ACC-6), the
answer to a wrong current password, and the schemas of the MFA status and WebAuthn options."""

from __future__ import annotations

import functools
from typing import Any

from storno_security.errors import InvalidPasswordError
from storno_security.integrations.falcon.errors import ApiError
from storno_security.integrations.falcon.openapi import obj
from storno_security.integrations.falcon.routing import Body, Ctx, Handler, iso
from storno_security.integrations.falcon.schemas import REAUTH_FIELDS
from storno_security.kit import MfaStatus
from storno_security.passkeys import PasskeyOptions

__all__ = [
    "MFA_STATUS",
    "OPTIONS",
    "mfa_status_json",
    "options_json",
    "proof",
    "reauth_note",
    "reauthenticated",
]

_TIME = {"type": "string", "format": "date-time"}

MFA_STATUS = obj(
    {
        "enabled": {"type": "boolean"},
        "methods": {"type": "array", "items": {"enum": ["totp", "backup_code", "passkey"]}},
        "backup_codes_left": {"type": "integer", "minimum": 0},
        "pending_enrolment": {"type": "boolean"},
        "has_passkeys": {"type": "boolean"},
    },
    required=("enabled", "methods", "backup_codes_left", "pending_enrolment", "has_passkeys"),
)

OPTIONS = obj(
    {"options": {"type": "object"}, "expires_at": _TIME}, required=("options", "expires_at")
)


def mfa_status_json(status: MfaStatus) -> dict[str, Any]:
    return {
        "enabled": status.enabled,
        "methods": list(status.methods),
        "backup_codes_left": status.backup_codes_left,
        "pending_enrolment": status.pending_enrolment,
        "has_passkeys": status.has_passkeys,
    }


def options_json(options: PasskeyOptions) -> dict[str, Any]:
    return {"options": options.as_dict(), "expires_at": iso(options.expires_at)}


def reauth_note(action: str) -> str:
    """The description of a route that re-authenticates for ``action`` (ACC-6)."""
    return (
        f"Needs re-authentication for `{action}`: with MFA on a `step_up_token` for it, else "
        "the `current_password` (or a step-up token), else (no password, no MFA) a login of the "
        "last 5 minutes. Without it: 403 `reauthentication_required` (or `step_up_required`) "
        "with the `accepted` fields; a wrong password: 403 `invalid_credentials`."
    )


def proof(body: Body) -> dict[str, Any]:
    """The re-authentication fields of a body, as the kit's keyword arguments."""
    return {name: body.get(name) for name in REAUTH_FIELDS}


def reauthenticated(handler: Handler) -> Handler:
    """A wrong ``current_password`` answers 403 ``invalid_credentials``, not the login's 401:
    the session is fine, only the proof is wrong, and a 401 would sign the client out (the
    API as it was)."""

    @functools.wraps(handler)
    def run(ctx: Ctx[Any], body: Body, **params: Any) -> None:
        try:
            handler(ctx, body, **params)
        except InvalidPasswordError:
            raise ApiError(
                403,
                "invalid_credentials",
                "The current password is not correct.",
                extra={"field": "current_password"},
            ) from None

    return run
