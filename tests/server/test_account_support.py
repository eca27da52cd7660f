"""Helpers for the account tests (MFA enrolment, step-up, passkeys, a server with Google
sign-in, audit reads). Holds no tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import falcon.testing
import pytest

from reference_server.app import create_app
from reference_server.mail import MemoryEmailSink
from reference_server.wiring import Server, build_server, run_now
from storno_security.audit import SecurityEventType
from storno_security.clock import FrozenClock
from storno_security.events import SecurityEvent
from tests.oidc.provider import CLIENT_ID, FakeGoogle
from tests.passkeys.authenticator import SoftAuthenticator
from tests.server.api import Api, FalconApi, User, fresh_email
from tests.server.conftest import make_settings

#: The browser origin of the test servers (STORNO_PUBLIC_URL=http://localhost:8000).
ORIGIN = "http://localhost:8000"

#: What a password account without MFA may re-authenticate with (ACC-6).
PASSWORD_PROOFS = ["step_up_token", "current_password"]


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


def next_code(api: FalconApi, secret: str) -> str:
    """A TOTP code of a later step than any used so far (the clock moves one step on)."""
    assert isinstance(api.clock, FrozenClock)
    api.clock.advance(30)
    return api.totp_code(secret)


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


def api_key(user: User, scope: str = "admin", **extra: Any) -> str:
    """A new API key of ``user`` (re-authenticated with the password)."""
    body = {"name": "k", "scope": scope, "current_password": user.password, **extra}
    created = user.post("/api/v1/api-keys", body)
    assert created.status == 201, created.json
    key: str = created.json["key"]
    return key


def adopt_tokens(user: User, body: dict[str, Any]) -> None:
    """Switch ``user`` to the session in a token response."""
    user.access_token = body["access_token"]
    user.refresh_token = body["refresh_token"]


def events(server: Server, event_type: SecurityEventType, user_id: str) -> list[SecurityEvent]:
    """The audit events of one type the user acted in, newest first."""
    return server.kit.stores.audit.query(
        organization_id=None, types=(event_type,), actor_id=user_id
    )


# --- a server with Google sign-in --------------------------------------------------------------


@pytest.fixture
def google() -> FakeGoogle:
    return FakeGoogle()


@pytest.fixture
def google_server(tmp_path: Path, clock: FrozenClock, google: FakeGoogle) -> Iterator[Server]:
    built = build_server(
        make_settings(tmp_path / "data", google_client_id=CLIENT_ID),
        clock=clock,
        email=MemoryEmailSink(),
        google_fetcher=google,
        run_later=run_now,
    )
    yield built
    built.close()


@pytest.fixture
def gapi(google_server: Server, clock: FrozenClock) -> FalconApi:
    sink = google_server.email
    assert isinstance(sink, MemoryEmailSink)
    client = falcon.testing.TestClient(create_app(server=google_server))
    return FalconApi(client, clock=clock, mailbox=lambda: list(sink.sent))


def google_login(
    gapi: FalconApi, google: FakeGoogle, *, sub: str | None = None, email: str | None = None
) -> User:
    """Sign in (creating the account) with Google: an account without a password."""
    assert gapi.clock is not None
    email = email or fresh_email("g")
    token = google.token(gapi.clock.now(), sub=sub or fresh_email("sub"), email=email)
    answer = gapi.post("/api/auth/google", {"id_token": token})
    assert answer.status == 200, answer.json
    return User(
        api=gapi,
        email=email,
        password="",
        user_id=answer.json["user"]["id"],
        organization_id="",
        access_token=answer.json["access_token"],
        refresh_token=answer.json["refresh_token"],
    )
