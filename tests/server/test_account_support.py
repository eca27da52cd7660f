"""Helpers for the account tests (MFA enrolment, step-up, passkeys). Holds no tests."""

from __future__ import annotations

from typing import Any

import attrs

from tests.passkeys.authenticator import SoftAuthenticator
from tests.server.api import Api, User

#: The browser origin of the test servers (STORNO_PUBLIC_URL=http://localhost:8000).
ORIGIN = "http://localhost:8000"


@attrs.define
class Enrolled:
    secret: str
    backup_codes: list[str]


def enable_mfa(api: Api, user: User, *, steps_ahead: int = 0) -> Enrolled:
    """Set up and confirm TOTP for ``user``; the code used is ``steps_ahead`` steps from now.

    Set-up re-authenticates with the user's password (MFA is off before it).
    """
    setup = user.post("/api/v1/mfa/totp/setup", {"current_password": user.password})
    assert setup.status == 200, setup.json
    secret = setup.json["secret"]
    confirm = user.post(
        "/api/v1/mfa/totp/confirm",
        {"code": api.totp_code(secret, steps_ahead=steps_ahead)},
    )
    assert confirm.status == 200, confirm.json
    return Enrolled(secret=secret, backup_codes=confirm.json["backup_codes"])


def step_up(api: Api, user: User, action: str, *, code: str, method: str = "totp") -> str:
    response = user.post("/api/v1/mfa/step-up", {"action": action, "method": method, "code": code})
    assert response.status == 200, response.json
    assert response.json["action"] == action
    token: str = response.json["step_up_token"]
    return token


def login(api: Api, user: User, password: str | None = None) -> Any:
    return api.post("/api/auth", {"email": user.email, "password": password or user.password})


def register_passkey(
    user: User,
    authenticator: SoftAuthenticator,
    *,
    name: str = "Laptop",
    reauth: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Register a passkey; the options call re-authenticates with ``reauth`` (default: the
    user's password, right for an account without MFA)."""
    proof = reauth if reauth is not None else {"current_password": user.password}
    options = user.post("/api/v1/passkeys/register/options", proof)
    assert options.status == 200, options.json
    credential = authenticator.create(options.json["options"], origin=ORIGIN)
    created = user.post("/api/v1/passkeys/register", {"credential": credential, "name": name})
    assert created.status == 201, created.json
    result: dict[str, Any] = created.json
    return result


def adopt_tokens(user: User, body: dict[str, Any]) -> None:
    """Switch ``user`` to the session in a token response."""
    user.access_token = body["access_token"]
    user.refresh_token = body["refresh_token"]
