"""The FastAPI example through FastAPI's test client, then once under a real server (uvicorn on
a free port, SQLite, mail to an outbox directory)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pyotp
import pytest
from fastapi.testclient import TestClient

from fastapi_app.app import create_app
from storno_security.clock import FrozenClock
from storno_security.kit import KitPolicy
from storno_security.passwords import PasswordPolicy

PASSWORD = "a long passphrase"  # noqa: S105 - the test's own
HERE = Path(__file__).resolve().parent

#: The example's policy with a cheap bcrypt: what is tested here is the wiring, not the cost.
FAST = KitPolicy.for_api(
    issuer="https://api.example.eu",
    audience="example-api",
    passwords=PasswordPolicy(cost=4, insecure_low_cost=True),
)

Token = Callable[[str, str], str]  # (kind, address) -> the token mailed


def bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def sign_up(client: Any, mailed: Token, email: str) -> str:
    """Register and confirm the address; the access token."""
    answer = client.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    confirmed = client.post(
        "/api/auth/confirm-email", json={"token": mailed("email_confirmation", email)}
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["user"]["email_confirmed"] is True
    return str(answer.json()["access_token"])


def mfa_and_api_key_flow(client: Any, mailed: Token, totp_at: Callable[[str], str]) -> None:
    """Register, confirm, turn MFA on, log in with the second factor, call a protected route,
    create an API key (re-authenticated by a backup code) and call the route with it."""
    token = sign_up(client, mailed, "ana@example.eu")
    setup = client.post(
        "/api/auth/mfa/totp/setup", json={"current_password": PASSWORD}, headers=bearer(token)
    )
    assert setup.status_code == 200, setup.text
    secret = setup.json()["secret"]
    confirm = client.post(
        "/api/auth/mfa/totp/confirm", json={"code": totp_at(secret)}, headers=bearer(token)
    )
    backup_codes = confirm.json()["backup_codes"]
    assert len(backup_codes) == 10

    login = client.post("/api/auth", json={"email": "ana@example.eu", "password": PASSWORD})
    assert login.json()["mfa_required"] is True
    assert "totp" in login.json()["mfa_methods"]
    verified = client.post(
        "/api/auth/mfa/verify",
        json={
            "mfa_token": login.json()["mfa_token"],
            "method": "backup_code",
            "code": backup_codes[0],
        },
    )
    assert verified.status_code == 200, verified.text
    assert verified.json()["backup_codes_left"] == 9
    access = verified.json()["access_token"]

    company = client.post("/companies", json={"name": "ACME SRL"}, headers=bearer(access))
    assert company.status_code == 201, company.text
    on_company = {"X-Company": company.json()["id"]}
    created = client.post(
        "/invoices",
        json={"number": "F-1", "amount": "119.00"},
        headers=bearer(access, **on_company),
    )
    assert created.status_code == 201, created.text

    # MFA is on: an API key needs a step-up token bought with a fresh second factor.
    refused = client.post(
        "/api/auth/api-keys",
        json={"name": "CI", "scope": "read", "current_password": PASSWORD},
        headers=bearer(access),
    )
    assert refused.status_code == 403
    assert refused.json()["accepted"] == ["step_up_token"]
    step_up = client.post(
        "/api/auth/step-up",
        json={"action": "apikey.create", "method": "backup_code", "code": backup_codes[1]},
        headers=bearer(access),
    )
    key = client.post(
        "/api/auth/api-keys",
        json={"name": "CI", "scope": "read", "step_up_token": step_up.json()["step_up_token"]},
        headers=bearer(access),
    )
    assert key.status_code == 201, key.text
    api_key = key.json()["key"]
    assert api_key.startswith("af_")

    listed = client.get("/invoices", headers={"Authorization": api_key, **on_company})
    assert listed.status_code == 200, listed.text
    assert [i["number"] for i in listed.json()["invoices"]] == ["F-1"]
    # a read key cannot create, and a key never manages keys
    write = client.post(
        "/invoices",
        json={"number": "F-2", "amount": "1.00"},
        headers={"Authorization": api_key, **on_company},
    )
    assert write.status_code == 403
    assert client.get("/api/auth/api-keys", headers={"Authorization": api_key}).status_code == 403

    logout = client.post(
        "/api/auth/logout",
        json={"refresh_token": verified.json()["refresh_token"]},
        headers=bearer(access),
    )
    assert logout.status_code == 204
    after = client.get("/invoices", headers=bearer(access, **on_company))
    assert after.status_code == 401
    assert after.json()["code"] == "invalid_token"


# --- through the test client ------------------------------------------------------------------


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def app_client(clock: FrozenClock) -> Iterator[TestClient]:
    with TestClient(create_app(policy=FAST, clock=clock)) as client:
        yield client


def mail_of(client: TestClient) -> Token:
    def mailed(kind: str, to: str) -> str:
        token = client.app.state.outbox.last(kind, to).token  # type: ignore[attr-defined]
        assert isinstance(token, str)
        return token

    return mailed


def test_register_confirm_mfa_and_an_api_key_call(
    app_client: TestClient, clock: FrozenClock
) -> None:
    mfa_and_api_key_flow(
        app_client, mail_of(app_client), lambda secret: pyotp.TOTP(secret).at(clock.now())
    )


def test_login_with_totp(app_client: TestClient, clock: FrozenClock) -> None:
    token = sign_up(app_client, mail_of(app_client), "ana@example.eu")
    secret = app_client.post(
        "/api/auth/mfa/totp/setup", json={"current_password": PASSWORD}, headers=bearer(token)
    ).json()["secret"]
    totp = pyotp.TOTP(secret)
    app_client.post(
        "/api/auth/mfa/totp/confirm", json={"code": totp.at(clock.now())}, headers=bearer(token)
    )
    challenge = app_client.post("/api/auth", json={"email": "ana@example.eu", "password": PASSWORD})
    mfa_token = challenge.json()["mfa_token"]
    again = app_client.post(
        "/api/auth/mfa/verify",
        json={"mfa_token": mfa_token, "method": "totp", "code": totp.at(clock.now())},
    )
    assert again.status_code == 401  # the same 30-second step is accepted once (MFA-2)
    assert again.json()["code"] == "invalid_mfa_code"
    clock.advance(timedelta(seconds=30))
    verified = app_client.post(
        "/api/auth/mfa/verify",
        json={"mfa_token": mfa_token, "method": "totp", "code": totp.at(clock.now())},
    )
    assert verified.status_code == 200, verified.text
    me = app_client.get("/api/auth/me", headers=bearer(verified.json()["access_token"]))
    assert me.json()["user"]["mfa_enabled"] is True


ROUTES: list[tuple[str, str, dict[str, Any] | None, bool]] = [
    # (method, path, body, needs X-Company)
    ("GET", "/invoices", None, True),
    ("POST", "/invoices", {"number": "F-9", "amount": "10.00"}, True),
    ("POST", "/invitations", {"email": "new@example.eu", "role": "viewer"}, False),
    ("DELETE", "/organization", None, False),
]
#: Which routes each role passes (the rest answer 403).
ALLOWED = {
    "owner": {"GET /invoices", "POST /invoices", "POST /invitations", "DELETE /organization"},
    "admin": {"GET /invoices", "POST /invoices", "POST /invitations"},
    "accountant": {"GET /invoices", "POST /invoices"},
    "viewer": {"GET /invoices"},
}


def test_a_protected_route_per_role(app_client: TestClient) -> None:
    mailed = mail_of(app_client)
    owner = sign_up(app_client, mailed, "owner@example.eu")
    company = app_client.post("/companies", json={"name": "ACME"}, headers=bearer(owner)).json()[
        "id"
    ]
    tokens = {"owner": owner}
    for role in ("admin", "accountant", "viewer"):
        email = f"{role}@example.eu"
        invited = app_client.post(
            "/invitations", json={"email": email, "role": role}, headers=bearer(owner)
        )
        assert invited.status_code == 201, invited.text
        token = sign_up(app_client, mailed, email)
        accepted = app_client.post(
            f"/invitations/{invited.json()['id']}/accept", headers=bearer(token)
        )
        assert accepted.json()["role"] == role
        # act in the inviting organization: it is not the member's default one
        tokens[role] = token
    organization = app_client.get("/api/auth/me", headers=bearer(owner))
    assert organization.status_code == 200
    owner_org = app_client.post("/companies", json={"name": "x"}, headers=bearer(owner))
    assert owner_org.status_code == 201
    org_id = app_client.app.state.data.companies[company].organization_id  # type: ignore[attr-defined]
    for role, token in tokens.items():
        for method, path, body, scoped in ROUTES:
            headers = bearer(token, **{"X-Organization": org_id})
            if scoped:
                headers["X-Company"] = company
            answer = app_client.request(method, path, json=body, headers=headers)
            expected = f"{method} {path}" in ALLOWED[role]
            assert answer.status_code in ((200, 201, 204) if expected else (403,)), (
                role,
                method,
                path,
                answer.text,
            )


def test_errors_answer_as_the_reference_server(app_client: TestClient) -> None:
    missing = app_client.get("/invoices")
    assert missing.status_code == 401
    assert missing.json() == {
        "error": "Authentication required.",
        "code": "authentication_required",
        "request_id": missing.headers["X-Request-Id"],
    }
    invalid = app_client.post("/api/auth", json={"email": "ana@example.eu", "password": ""})
    assert invalid.status_code == 400
    assert invalid.json()["field"] == "password"
    token = sign_up(app_client, mail_of(app_client), "ana@example.eu")
    no_company = app_client.get("/invoices", headers=bearer(token))
    assert no_company.status_code == 400
    assert no_company.json()["code"] == "company_required"
    for _ in range(4):
        app_client.post("/api/auth", json={"email": "ana@example.eu", "password": "wrong one"})
    limited = app_client.post("/api/auth", json={"email": "ana@example.eu", "password": "wrong"})
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["RateLimit-Remaining"] == "0"


def test_the_auth_endpoints_are_in_the_openapi_document(app_client: TestClient) -> None:
    document = app_client.get("/openapi.json").json()
    for path in ("/api/auth/register", "/api/auth", "/api/auth/mfa/verify", "/api/auth/api-keys"):
        assert path in document["paths"], path
    assert set(document["components"]["securitySchemes"]) == {"accessToken", "apiKey"}
    invoices = document["paths"]["/invoices"]["get"]
    assert {p["name"] for p in invoices["parameters"]} >= {"x-organization", "x-company"}


# --- under a real server -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """uvicorn serving the example on a free port, SQLite in ``tmp_path``; stopped at the end."""
    port, outbox = free_port(), tmp_path / "outbox"
    env = {
        **os.environ,
        "STORNO_EXAMPLE_DATABASE": f"sqlite:///{tmp_path / 'app.db'}",
        "STORNO_EXAMPLE_OUTBOX": str(outbox),
    }
    process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "--app-dir",
            str(HERE.parent),
            "fastapi_app.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:  # no polling: the server says when it listens
            if "Uvicorn running on" in line:
                break
        else:
            pytest.fail("uvicorn exited before listening")
        yield f"http://127.0.0.1:{port}", outbox
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_under_uvicorn(server: tuple[str, Path]) -> None:
    base_url, outbox = server

    def mailed(kind: str, to: str) -> str:
        for path in sorted(outbox.glob(f"*-{kind}.json"), reverse=True):
            message = json.loads(path.read_text(encoding="utf-8"))
            if message["to"] == to:
                return str(message["token"])
        raise AssertionError(f"no {kind} mail to {to}")

    with httpx2.Client(base_url=base_url, timeout=30) as client:
        mfa_and_api_key_flow(client, mailed, lambda secret: pyotp.TOTP(secret).now())
