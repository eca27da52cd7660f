"""One walk through every auth endpoint, the same for the Flask blueprint and the FastAPI
router (they serve the same paths with the same answers): each framework's test wraps its test
client in a :class:`Client` and calls :func:`walk_every_endpoint`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import attrs

from tests.kit.conftest import ORIGIN, PASSWORD, World

NEW_PASSWORD = "another long passphrase"


@attrs.frozen
class Answer:
    status: int
    body: Any
    headers: Mapping[str, str]


#: ``(method, path, json body or None, headers)`` -> the answer
Call = Callable[[str, str, Any, Mapping[str, str]], Answer]


@attrs.define
class Client:
    """A test client of the auth endpoints under ``/api/auth``."""

    call: Call
    access: str = ""

    def send(self, method: str, path: str, body: Any = None, *, auth: str | None = None) -> Answer:
        token = self.access if auth is None else auth
        headers = {"Authorization": token if token.startswith("af_") else f"Bearer {token}"}
        return self.call(method, f"/api/auth{path}", body, headers if token else {})

    def ok(self, method: str, path: str, body: Any = None, *, status: int = 200) -> Any:
        answer = self.send(method, path, body)
        assert answer.status == status, (path, answer.status, answer.body)
        if status != 204:
            assert answer.headers["Cache-Control"] == "no-store"
        return answer.body


def _fresh_totp(world: World, secret: str) -> str:
    """A code of the next TOTP step (a code is accepted once)."""
    world.clock.advance(timedelta(seconds=30))
    return world.totp(secret)


def _mfa_login(client: Client, email: str, password: str = PASSWORD) -> dict[str, Any]:
    challenge = client.ok("POST", "", {"email": email, "password": password})
    assert challenge["mfa_required"] is True
    return dict(challenge)


def walk_every_endpoint(client: Client, world: World) -> None:
    """Sign up, confirm, enrol TOTP, log in with each second factor, register and use a
    passkey, make and revoke an API key, turn MFA off, reset the password, log out."""
    email = world.email()
    registered = client.ok(
        "POST",
        "/register",
        {"email": email, "password": PASSWORD, "name": "Ana", "organization_name": "Ana d.o.o."},
        status=201,
    )
    assert registered["user"]["name"] == "Ana"
    assert registered["user"]["email_confirmed"] is False
    client.access = registered["access_token"]

    sent = client.ok("POST", "/resend-confirmation", {"email": email}, status=202)
    assert "new link" in sent["message"]
    token = world.mail.last("email_confirmation", email).token
    confirmed = client.ok("POST", "/confirm-email", {"token": token})
    assert confirmed["user"]["email_confirmed"] is True

    me = client.ok("GET", "/me")
    assert (me["user"]["id"], me["user"]["email"]) == (registered["user"]["id"], email)
    assert client.ok("GET", "/mfa")["enabled"] is False

    # TOTP enrolment, then a login that needs the second factor
    enrolment = client.ok("POST", "/mfa/totp/setup", {"current_password": PASSWORD})
    assert enrolment["otpauth_uri"].startswith("otpauth://totp/")
    confirmed_totp = client.ok(
        "POST", "/mfa/totp/confirm", {"code": world.totp(enrolment["secret"])}
    )
    assert confirmed_totp["mfa_enabled"] is True
    backup_codes = confirmed_totp["backup_codes"]
    status = client.ok("GET", "/mfa")
    assert (status["enabled"], status["methods"], status["has_passkeys"]) == (
        True,
        ["totp", "backup_code"],
        False,
    )
    secret = enrolment["secret"]

    challenge = _mfa_login(client, email)
    assert challenge["mfa_methods"] == ["totp", "backup_code"]
    session = client.ok(
        "POST",
        "/mfa/verify",
        {"mfa_token": challenge["mfa_token"], "method": "totp", "code": _fresh_totp(world, secret)},
    )
    client.access = session["access_token"]
    challenge = _mfa_login(client, email)
    by_backup = client.ok(
        "POST",
        "/mfa/verify",
        {"mfa_token": challenge["mfa_token"], "method": "backup_code", "code": backup_codes[0]},
    )
    assert by_backup["backup_codes_left"] == len(backup_codes) - 1

    # a passkey, registered with a step-up, then used alone and as the second factor
    grant = client.ok(
        "POST",
        "/step-up",
        {"action": "passkey.register", "method": "totp", "code": _fresh_totp(world, secret)},
    )
    assert grant["action"] == "passkey.register"
    assert grant["expires_at"].endswith("Z")
    options = client.ok(
        "POST", "/passkeys/register/options", {"step_up_token": grant["step_up_token"]}
    )
    assert options["expires_at"].endswith("Z")
    response = world.authenticator.create(options["options"], origin=ORIGIN)
    passkey = client.ok(
        "POST", "/passkeys/register", {"credential": response, "name": "laptop"}, status=201
    )
    assert (passkey["id"], passkey["name"], passkey["last_used_at"]) == (
        response["id"],
        "laptop",
        None,
    )
    [listed] = client.ok("GET", "/passkeys")["passkeys"]
    assert listed["id"] == passkey["id"]

    usernameless = client.ok("POST", "/passkey/login/options")
    assert (
        "allowCredentials" not in usernameless["options"]
        or not usernameless["options"]["allowCredentials"]
    )
    alone = client.ok(
        "POST",
        "/passkey/login",
        {"credential": world.authenticator.get(usernameless["options"], origin=ORIGIN)},
    )
    assert alone["user"]["id"] == registered["user"]["id"]
    by_email = client.ok("POST", "/passkey/login/options", {"email": email})
    assert [c["id"] for c in by_email["options"]["allowCredentials"]] == [passkey["id"]]

    challenge = _mfa_login(client, email)
    assert "passkey" in challenge["mfa_methods"]
    by_passkey = client.ok(
        "POST",
        "/mfa/verify",
        {
            "mfa_token": challenge["mfa_token"],
            "method": "passkey",
            "credential": world.authenticator.get(challenge["passkey_options"], origin=ORIGIN),
        },
    )
    assert by_passkey["user"]["id"] == registered["user"]["id"]

    rotated = client.ok("POST", "/refresh", {"refresh_token": by_passkey["refresh_token"]})
    assert rotated["token_type"] == "Bearer"
    assert rotated["refresh_token"] != by_passkey["refresh_token"]

    # passkey removal: a garbled id and an unknown one are a 404, the real one goes
    for unknown in ("A", "!!!", "AAAA", "A" * 1400):
        gone = client.send("DELETE", f"/passkeys/{unknown}")
        assert (gone.status, gone.body["code"]) == (404, "not_found")
    assert client.send("DELETE", f"/passkeys/{passkey['id']}").status == 204
    assert client.ok("GET", "/passkeys")["passkeys"] == []

    # an API key, made with a step-up, listed, used, revoked
    grant = client.ok(
        "POST",
        "/step-up",
        {"action": "apikey.create", "method": "totp", "code": _fresh_totp(world, secret)},
    )
    expires = (world.clock.now() + timedelta(days=30)).isoformat().replace("+00:00", "Z")
    created = client.ok(
        "POST",
        "/api-keys",
        {
            "name": "CI",
            "scope": "read",
            "expires_at": expires,
            "permissions": ["invoice.view"],
            "organization": registered["organization_id"],
            "step_up_token": grant["step_up_token"],
        },
        status=201,
    )
    assert created["key"].startswith("af_")
    assert created["expires_at"] == expires
    assert [k["id"] for k in client.ok("GET", "/api-keys")["api_keys"]] == [created["id"]]
    as_key = client.send("GET", "/me", auth=created["key"])
    assert (as_key.status, as_key.body["user"]["id"]) == (200, registered["user"]["id"])
    missing = client.send("DELETE", "/api-keys/no-such-key")
    assert (missing.status, missing.body["code"]) == (404, "not_found")
    assert client.send("DELETE", f"/api-keys/{created['id']}").status == 204
    assert client.send("GET", "/me", auth=created["key"]).status == 401

    # MFA off with a step-up: a fresh session
    grant = client.ok(
        "POST",
        "/step-up",
        {"action": "mfa.disable", "method": "totp", "code": _fresh_totp(world, secret)},
    )
    fresh = client.ok("POST", "/mfa/disable", {"step_up_token": grant["step_up_token"]})
    assert fresh["user"]["mfa_enabled"] is False
    client.access = fresh["access_token"]
    ended = client.ok("POST", "/logout-everywhere")["sessions_ended"]
    assert ended >= 1
    assert client.send("GET", "/me").status == 401

    # a password reset, a login with the new password, a logout
    sent = client.ok("POST", "/forgot-password", {"email": email}, status=202)
    assert "reset link" in sent["message"]
    reset_token = world.mail.last("password_reset", email).token
    client.ok("POST", "/reset-password", {"token": reset_token, "new_password": NEW_PASSWORD})
    session = client.ok("POST", "", {"email": email, "password": NEW_PASSWORD})
    client.access = session["access_token"]
    client.ok("POST", "/logout", {"refresh_token": session["refresh_token"]}, status=204)
    refused = client.send("POST", "/refresh", {"refresh_token": session["refresh_token"]})
    assert refused.status == 401
