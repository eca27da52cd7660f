"""The Flask integration: the blueprint and the decorators over every backend, the reference
server's error answers, the caller on ``flask.g``, the request context in the events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from flask import Flask, g

from storno_security.clock import FrozenClock
from storno_security.errors import (
    InvalidAccessTokenError,
    MfaLockedError,
    ReauthenticationRequiredError,
    StoreUnavailableError,
)
from storno_security.events import current_request_context
from storno_security.integrations.flask import (
    StornoFlask,
    login_required,
    rate_limit,
    require_permission,
)
from storno_security.kit import Kit
from storno_security.stores.memory import memory_bundle
from tests.integrations.auth_tour import Answer, Client, walk_every_endpoint
from tests.integrations.test_fastapi import ERRORS, _reference_answer
from tests.kit.conftest import PASSWORD, MailCatcher, World, kit_keys, kit_policy

__all__ = ["InvalidAccessTokenError", "MfaLockedError", "ReauthenticationRequiredError"]


def make_app(world: World, **options: Any) -> Flask:
    app = Flask(__name__)
    StornoFlask(world.kit, app, **options)

    @app.get("/invoices")
    @require_permission("invoice.view", company=True)
    def invoices() -> dict[str, Any]:
        return {
            "organization": g.authorization.organization_id,
            "company": g.authorization.company_id,
            "principal": g.principal.user_id,
        }

    @app.get("/whoami")
    @login_required
    def whoami() -> dict[str, Any]:
        return {"user": g.caller.user_id, "kind": g.caller.kind}

    @app.get("/person")
    @login_required(allow_api_keys=False)
    def person() -> dict[str, Any]:
        return {"user": g.caller.user_id}

    @app.post("/limited")
    @rate_limit("login")
    def limited() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/down")
    def down() -> None:
        raise StoreUnavailableError(reason="unavailable")

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a secret detail")

    return app


def bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def tour_client(app: Flask) -> Client:
    test_client = app.test_client()

    def call(method: str, path: str, body: Any, headers: Mapping[str, str]) -> Answer:
        options: dict[str, Any] = {} if body is None else {"json": body}
        answer = test_client.open(path, method=method, headers=dict(headers), **options)
        return Answer(answer.status_code, answer.get_json(silent=True), dict(answer.headers))

    return Client(call)


@pytest.mark.spec("REF-4")
def test_a_session_through_the_blueprint_on_every_backend(world: World) -> None:
    client = make_app(world).test_client()
    email = world.email()
    registered = client.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    assert registered.status_code == 201, registered.get_data(as_text=True)
    token = world.mail.last("email_confirmation", email).token
    assert client.post("/api/auth/confirm-email", json={"token": token}).status_code == 200
    login = client.post("/api/auth", json={"email": email, "password": PASSWORD}).get_json()
    access = login["access_token"]
    organization = registered.get_json()["organization_id"]
    company = world.company(organization)
    seen = client.get("/invoices", headers=bearer(access, **{"X-Company": company}))
    assert seen.status_code == 200, seen.get_data(as_text=True)
    assert seen.get_json()["company"] == company
    assert seen.headers["RateLimit-Limit"] == "50000"

    key = client.post(
        "/api/auth/api-keys",
        json={"name": "CI", "scope": "read", "current_password": PASSWORD},
        headers=bearer(access),
    )
    assert key.status_code == 201, key.get_data(as_text=True)
    api_key = {"Authorization": key.get_json()["key"]}
    assert client.get("/whoami", headers=api_key).get_json()["kind"] == "api_key"
    assert client.get("/person", headers=api_key).status_code == 403
    assert client.get("/invoices", headers={**api_key, "X-Company": company}).status_code == 200

    logout = client.post(
        "/api/auth/logout", json={"refresh_token": login["refresh_token"]}, headers=bearer(access)
    )
    assert logout.status_code == 204
    dead = client.get("/whoami", headers=bearer(access))
    assert (dead.status_code, dead.get_json()["code"]) == (401, "invalid_token")
    assert dead.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.parametrize("bundle_factory", ["memory"], indirect=True)
@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_errors_answer_exactly_as_the_reference_server(world: World, error: BaseException) -> None:
    app = make_app(world, auth_blueprint=False)

    @app.get("/raise")
    def raising() -> None:
        raise error

    ours = app.test_client().get("/raise", headers={"X-Request-Id": "req-1"})
    status, body, headers = _reference_answer(error)
    assert (ours.status_code, ours.get_json()) == (status, body)
    for name in ("Retry-After", "WWW-Authenticate"):
        assert ours.headers.get(name) == headers.get(name.lower(), headers.get(name))


@pytest.mark.parametrize("bundle_factory", ["memory"], indirect=True)
def test_missing_credentials_unexpected_errors_and_limits(world: World) -> None:
    client = make_app(world).test_client()
    missing = client.get("/whoami", headers={"X-Request-Id": "r-1"})
    assert missing.status_code == 401
    assert missing.get_json() == {
        "error": "Authentication required.",
        "code": "authentication_required",
        "request_id": "r-1",
    }
    assert missing.headers["X-Request-Id"] == "r-1"
    boom = client.get("/boom")
    assert boom.status_code == 500
    assert "secret" not in boom.get_data(as_text=True)
    assert client.get("/down").headers["Retry-After"] == "1"
    assert client.get("/no-such-route").get_json()["code"] == "not_found"
    for _ in range(5):
        assert client.post("/limited").status_code == 200
    refused = client.post("/limited")
    assert (refused.status_code, refused.get_json()["code"]) == (429, "rate_limited")
    assert int(refused.headers["Retry-After"]) >= 1


@pytest.mark.spec("ACC-3")
@pytest.mark.parametrize("bundle_factory", ["memory"], indirect=True)
def test_events_carry_the_request_context(world: World) -> None:
    client = make_app(world, trusted_proxies=["127.0.0.0/8"]).test_client()
    email = world.email()
    world.register(email)
    client.post(
        "/api/auth",
        json={"email": email, "password": PASSWORD},
        headers={
            "X-Request-Id": "login-3",
            "User-Agent": "tests/1.0",
            "X-Forwarded-For": "198.51.100.7",
        },
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
    )
    [event] = [e for e in world.events.of("login.succeeded") if e.request_id == "login-3"]
    assert (event.ip, event.user_agent) == ("198.51.100.7", "tests/1.0")


@pytest.mark.parametrize("bundle_factory", ["memory"], indirect=True)
def test_decorators_need_the_extension(world: World) -> None:
    app = Flask(__name__)
    app.testing = True  # let the error through to the test

    @app.get("/x")
    @login_required
    def view() -> str:
        return "x"

    with pytest.raises(RuntimeError, match="init_app"):
        app.test_client().get("/x", headers={"Authorization": "Bearer x"})
    with pytest.raises(TypeError):
        StornoFlask(object())  # type: ignore[arg-type]


@pytest.mark.parametrize("bundle_factory", ["memory"], indirect=True)
@pytest.mark.parametrize(
    "body",
    [
        '{"email": "a@example.eu", "password": "long enough password", "name": "\\ud800"}',
        '{"credential": {"\\udfff": "x"}}',
    ],
)
def test_a_lone_surrogate_is_a_400(world: World, body: str) -> None:
    client = make_app(world).test_client()
    path = "/api/auth/register" if "email" in body else "/api/auth/passkey/login"
    answer = client.post(path, data=body, content_type="application/json")
    assert answer.status_code == 400
    assert answer.get_json()["code"] == "invalid_request"


@pytest.mark.parametrize("bundle_factory", ["memory"], indirect=True)
def test_every_endpoint_of_the_blueprint_answers_as_the_router(world: World) -> None:
    walk_every_endpoint(tour_client(make_app(world)), world)


@pytest.mark.parametrize("bundle_factory", ["memory"], indirect=True)
def test_init_app_later_installs_the_same_extension(world: World) -> None:
    extension = StornoFlask(world.kit, auth_blueprint=False)
    app = Flask(__name__)
    assert "storno_security" not in app.extensions
    extension.init_app(app)
    assert app.extensions["storno_security"] is extension
    assert repr(extension) == f"StornoFlask({world.kit!r})"
    # no blueprint: the auth paths are not served
    assert app.test_client().post("/api/auth", json={}).status_code == 404


@pytest.mark.parametrize("bundle_factory", ["memory"], indirect=True)
def test_a_request_answered_before_the_extension_runs_still_answers(world: World) -> None:
    app = Flask(__name__)

    @app.before_request
    def maintenance() -> tuple[str, int]:
        return "down for maintenance", 503

    StornoFlask(world.kit, app)
    answer = app.test_client().get("/anything", headers={"X-Request-Id": "req-9"})
    assert (answer.status_code, answer.get_data(as_text=True)) == (503, "down for maintenance")
    # the extension's before-hook never ran: no request context to leave, nothing counted
    assert "RateLimit-Limit" not in answer.headers
    assert "X-Request-Id" not in answer.headers  # never an empty one
    assert current_request_context().request_id is None


@pytest.mark.parametrize("bundle_factory", ["memory"], indirect=True)
def test_without_limit_api_requests_are_not_counted(world: World) -> None:
    client = make_app(world, limit_api=False).test_client()
    access = world.register().tokens.access_token
    seen = client.get("/whoami", headers=bearer(access))
    assert seen.status_code == 200
    assert "RateLimit-Limit" not in seen.headers
    refused = client.get("/whoami", headers=bearer("not-a-token"))
    assert (refused.status_code, refused.get_json()["code"]) == (401, "invalid_token")
    assert "RateLimit-Limit" not in refused.headers
    counted = make_app(world).test_client().get("/whoami", headers=bearer("not-a-token"))
    assert counted.headers["RateLimit-Limit"] == "10000"


@pytest.mark.spec("ACC-5")
def test_registration_without_a_session_until_confirmed(clock: FrozenClock) -> None:
    mail = MailCatcher()
    kit = Kit(
        memory_bundle(),
        policy=kit_policy(require_confirmed_email=True),
        keys=kit_keys(),
        clock=clock,
        mailer=mail,
    )
    app = Flask(__name__)
    StornoFlask(kit, app)
    answer = app.test_client().post(
        "/api/auth/register", json={"email": "bo@example.eu", "password": PASSWORD}
    )
    assert answer.status_code == 201
    body = answer.get_json()
    assert "access_token" not in body
    assert body["user"]["email"] == "bo@example.eu"
    assert body["organization_id"]


@pytest.mark.parametrize("bundle_factory", ["memory"], indirect=True)
def test_a_body_not_sent_as_small_json_is_refused(world: World) -> None:
    client = make_app(world).test_client()
    form = client.post("/api/auth/register", data={"email": "a@example.eu"})
    assert (form.status_code, form.get_json()["code"]) == (415, "unsupported_media_type")
    large = client.post(
        "/api/auth/register", data="x" * (64 * 1024 + 1), content_type="application/json"
    )
    assert (large.status_code, large.get_json()["code"]) == (413, "payload_too_large")


@pytest.mark.parametrize("bundle_factory", ["memory"], indirect=True)
@pytest.mark.parametrize(
    ("path", "data", "field"),
    [
        ("/register", "[1, 2]", None),
        ("/register", "{not json", None),
        ("/register", '{"email": 7, "password": "p"}', "email"),
        ("/register", '{"email": "", "password": "p"}', "email"),
        ("/passkey/login", '{"credential": "text"}', "credential"),
        ("/mfa/verify", '{"mfa_token": "t", "method": "sms"}', "method"),
        ("/mfa/verify", '{"mfa_token": "t", "method": "passkey"}', "credential"),
        ("/api-keys", '{"name": "CI", "scope": "read", "permissions": "all"}', "permissions"),
        ("/api-keys", '{"name": "CI", "scope": "read", "permissions": [1]}', "permissions"),
        ("/api-keys", '{"name": "CI", "scope": "root"}', "scope"),
        ("/api-keys", '{"name": "CI", "scope": "read", "expires_at": "soon"}', "expires_at"),
        ("/api-keys", '{"name": "CI", "scope": "read", "expires_at": "2030-01-01"}', "expires_at"),
    ],
)
def test_a_malformed_body_is_refused_before_the_kit_runs(
    world: World, path: str, data: str, field: str | None
) -> None:
    access = world.register().tokens.access_token
    answer = (
        make_app(world)
        .test_client()
        .post(
            f"/api/auth{path}", data=data, content_type="application/json", headers=bearer(access)
        )
    )
    assert (answer.status_code, answer.get_json()["code"]) == (400, "invalid_request")
    assert answer.get_json().get("field") == field
