"""The FastAPI integration: the auth router and the dependencies over every backend, with the
per-request verbs on their native async stores; the error answers of the reference server; the
request context in the events; the flows off the loop."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from storno_security.aio import (
    InlineApiKeyStore,
    InlineRateLimitStorage,
    InlineSessionStateStore,
    OffloadedApiKeyStore,
    OffloadedSessionStateStore,
)
from storno_security.clock import FrozenClock
from storno_security.errors import (
    InvalidAccessTokenError,
    MfaLockedError,
    ReauthenticationRequiredError,
    StoreUnavailableError,
)
from storno_security.integrations.fastapi import Caller, StornoFastAPI, setup
from storno_security.kit import Kit
from storno_security.rbac import Authorization
from storno_security.stores.memory import memory_bundle
from tests.integrations.auth_tour import Answer, Client, walk_every_endpoint
from tests.kit.conftest import PASSWORD, MailCatcher, World, kit_keys, kit_policy


def make_app(world: World, **options: Any) -> tuple[FastAPI, StornoFastAPI]:
    app = FastAPI()
    security = setup(app, world.kit, **options)
    can_view = security.require_permission("invoice.view", company=True)
    can_delete = security.require_permission("org.delete")

    @app.get("/invoices")
    async def invoices(auth: Authorization = Depends(can_view)) -> dict[str, Any]:
        return {"organization": auth.organization_id, "company": auth.company_id}

    @app.delete("/organization", status_code=204)
    async def delete(auth: Authorization = Depends(can_delete)) -> None:
        return None

    @app.get("/whoami")
    async def whoami(caller: Caller = Depends(security.authenticated)) -> dict[str, Any]:
        return {"user": caller.user_id, "kind": caller.kind}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a secret detail")

    @app.get("/down")
    async def down() -> None:
        raise StoreUnavailableError(reason="unavailable")

    return app, security


@pytest.fixture
def client(world: World, urls: dict[str, Any]) -> Iterator[TestClient]:
    app, _ = make_app(world, **urls)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def tour_client(client: TestClient) -> Client:
    def call(method: str, path: str, body: Any, headers: Mapping[str, str]) -> Answer:
        options: dict[str, Any] = {} if body is None else {"json": body}
        answer = client.request(method, path, headers=dict(headers), **options)
        return Answer(answer.status_code, answer.json() if answer.content else None, answer.headers)

    return Client(call)


def sign_up(client: TestClient, world: World) -> tuple[str, dict[str, Any]]:
    email = world.email()
    answer = client.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    token = world.mail.last("email_confirmation", email).token
    assert client.post("/api/auth/confirm-email", json={"token": token}).status_code == 200
    return email, answer.json()


# --- over every backend ----------------------------------------------------------------------


@pytest.mark.spec("REF-4")
def test_a_session_through_the_router_on_every_backend(client: TestClient, world: World) -> None:
    email, registered = sign_up(client, world)
    login = client.post("/api/auth", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    access, refresh = login.json()["access_token"], login.json()["refresh_token"]
    company = world.company(registered["organization_id"])
    seen = client.get("/invoices", headers=bearer(access, **{"X-Company": company}))
    assert seen.status_code == 200, seen.text
    assert seen.json() == {"organization": registered["organization_id"], "company": company}
    assert seen.headers["RateLimit-Limit"] == "50000"

    first = client.post("/api/auth/refresh", json={"refresh_token": refresh}).json()
    second = client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200, second.text
    reused = client.post("/api/auth/refresh", json={"refresh_token": refresh})
    assert (reused.status_code, reused.json()["code"]) == (401, "refresh_token_reused")
    revoked = client.get("/whoami", headers=bearer(second.json()["access_token"]))
    assert (revoked.status_code, revoked.json()["code"]) == (401, "invalid_token")

    again = client.post("/api/auth", json={"email": email, "password": PASSWORD}).json()
    assert client.get("/whoami", headers=bearer(again["access_token"])).status_code == 200
    logout = client.post(
        "/api/auth/logout",
        json={"refresh_token": again["refresh_token"]},
        headers=bearer(again["access_token"]),
    )
    assert logout.status_code == 204
    dead = client.get("/whoami", headers=bearer(again["access_token"]))
    assert dead.status_code == 401
    assert dead.json()["code"] == "invalid_token"
    assert dead.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.spec("KEY-4")
def test_an_api_key_through_the_router_on_every_backend(client: TestClient, world: World) -> None:
    _, registered = sign_up(client, world)
    access = registered["access_token"]
    created = client.post(
        "/api/auth/api-keys",
        json={"name": "CI", "scope": "read", "current_password": PASSWORD},
        headers=bearer(access),
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    company = world.company(registered["organization_id"])
    assert client.get("/whoami", headers={"Authorization": key}).json()["kind"] == "api_key"
    read = client.get("/invoices", headers={"Authorization": key, "X-Company": company})
    assert read.status_code == 200, read.text
    # a key never acts as its owner in person, nor holds an Owner act
    assert client.get("/api/auth/api-keys", headers={"Authorization": key}).status_code == 403
    assert client.delete("/organization", headers={"Authorization": key}).status_code == 403
    assert client.delete("/organization", headers=bearer(access)).status_code == 204
    key_id = created.json()["id"]
    assert client.delete(f"/api-keys/{key_id}").status_code == 404  # not a route of ours
    revoked = client.delete(f"/api/auth/api-keys/{key_id}", headers=bearer(access))
    assert revoked.status_code == 204
    gone = client.get("/whoami", headers={"Authorization": key})
    assert gone.status_code == 401
    assert gone.json()["code"] == "invalid_api_key"
    as_bearer = client.get("/whoami", headers=bearer(key))
    assert as_bearer.json()["code"] == "invalid_api_key"


def test_each_verb_has_its_async_form(
    request: pytest.FixtureRequest, world: World, urls: dict[str, Any]
) -> None:
    backend = str(request.node.callspec.params["bundle_factory"])
    _, security = make_app(world, **urls)
    verbs = security.verbs
    found = (
        type(verbs.sessions).__name__,
        type(verbs.api_keys._store).__name__,
        type(verbs.limiter._storage).__name__,
    )
    expected = {
        "memory": ("InlineSessionStateStore", "InlineApiKeyStore", "InlineRateLimitStorage"),
        # a SQLite read is made on the loop: a WAL reader takes no lock (see AsyncVerbs)
        "sqlite": ("InlineSessionStateStore", "InlineApiKeyStore", "InlineRateLimitStorage"),
        "postgresql": (
            "AsyncSqlSessionStateStore",
            "AsyncSqlApiKeyStore",
            "InlineRateLimitStorage",
        ),
        "mariadb": ("AsyncSqlSessionStateStore", "AsyncSqlApiKeyStore", "InlineRateLimitStorage"),
        "postgresql+redis": (
            "AsyncSqlSessionStateStore",
            "AsyncSqlApiKeyStore",
            "AsyncRedisRateLimitStorage",
        ),
    }
    assert found == expected[backend]


@pytest.mark.parametrize("bundle_factory", ["sqlite"], indirect=True)
def test_sqlite_through_aiosqlite(world: World, urls: dict[str, Any]) -> None:
    app, security = make_app(world, **urls, inline_sqlite=False)
    assert type(security.verbs.sessions).__name__ == "AsyncSqlSessionStateStore"
    with TestClient(app) as client:
        _, registered = sign_up(client, world)
        token = registered["access_token"]
        assert client.get("/whoami", headers=bearer(token)).status_code == 200
        client.post(
            "/api/auth/logout",
            json={"refresh_token": registered["refresh_token"]},
            headers=bearer(token),
        )
        assert client.get("/whoami", headers=bearer(token)).status_code == 401


@pytest.mark.parametrize("bundle_factory", ["memory"], indirect=True)
def test_every_endpoint_of_the_router_answers_as_the_blueprint(
    client: TestClient, world: World
) -> None:
    walk_every_endpoint(tour_client(client), world)


# --- the reference server's error answers ----------------------------------------------------


def _reference_answer(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """What the reference server answers to ``exc``."""
    import falcon
    import falcon.testing

    from storno_security.integrations.falcon.errors import handle_error

    class Raising:
        def on_get(self, req: Any, resp: Any) -> None:
            req.context.request_id = "req-1"
            raise exc

    api = falcon.App()
    api.add_route("/", Raising())
    api.add_error_handler(Exception, handle_error)
    result = falcon.testing.TestClient(api).simulate_get("/")
    return result.status_code, result.json, dict(result.headers)


ERRORS: list[BaseException] = [
    InvalidAccessTokenError(reason="expired"),
    ReauthenticationRequiredError(
        action="apikey.create", accepted=("step_up_token",), reason="mfa"
    ),
    MfaLockedError(retry_after=120),
    StoreUnavailableError(reason="unavailable"),
]


@pytest.mark.parametrize("bundle_factory", ["memory"], indirect=True)
@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_errors_answer_exactly_as_the_reference_server(world: World, error: BaseException) -> None:
    app = FastAPI()
    setup(app, world.kit, auth_router=False)

    @app.get("/raise")
    async def raising() -> None:
        raise error

    with TestClient(app) as client:
        ours = client.get("/raise", headers={"X-Request-Id": "req-1"})
    status, body, headers = _reference_answer(error)
    assert (ours.status_code, ours.json()) == (status, body)
    for name in ("Retry-After", "WWW-Authenticate"):
        assert ours.headers.get(name) == headers.get(name.lower(), headers.get(name))


@pytest.mark.parametrize("bundle_factory", ["memory"], indirect=True)
def test_unexpected_errors_and_validation_errors_tell_nothing(client: TestClient) -> None:
    boom = client.get("/boom", headers={"X-Request-Id": "req-2"})
    assert boom.status_code == 500
    assert boom.json() == {
        "error": "Internal server error.",
        "code": "internal_error",
        "request_id": "req-2",
    }
    secret = "my secret passphrase 12345"
    refused = client.post("/api/auth", json={"email": "x", "password": secret, "extra": 1})
    assert refused.status_code == 400
    assert secret not in refused.text
    assert refused.json()["code"] == "invalid_request"
    down = client.get("/down")
    assert (down.status_code, down.json()["code"]) == (503, "unavailable")
    assert down.headers["Retry-After"] == "1"
    missing = client.get("/no-such-route")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")


@pytest.mark.spec("RL-3")
@pytest.mark.parametrize("bundle_factory", ["memory"], indirect=True)
def test_the_login_limit_answers_429_with_the_headers(client: TestClient) -> None:
    for remaining in (4, 3, 2, 1, 0):
        answer = client.post("/api/auth", json={"email": "a@example.eu", "password": "wrong!!"})
        assert answer.status_code == 401
        assert answer.headers["RateLimit-Remaining"] == str(remaining)
    refused = client.post("/api/auth", json={"email": "a@example.eu", "password": "wrong!!"})
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["RateLimit-Limit"] == "5"


# --- the request context ----------------------------------------------------------------------


@pytest.mark.spec("ACC-3")
@pytest.mark.parametrize("bundle_factory", ["memory"], indirect=True)
def test_events_carry_the_request_context(world: World) -> None:
    app, _ = make_app(world, trusted_proxies=["127.0.0.0/8"])
    email = world.email()
    world.register(email)
    with TestClient(app, client=("127.0.0.1", 5000)) as client:
        client.post(
            "/api/auth",
            json={"email": email, "password": PASSWORD},
            headers={
                "X-Request-Id": "login-1",
                "User-Agent": "tests/1.0",
                "X-Forwarded-For": "198.51.100.7, 127.0.0.2",
            },
        )
    [event] = [e for e in world.events.of("login.succeeded") if e.request_id == "login-1"]
    assert (event.ip, event.user_agent) == ("198.51.100.7", "tests/1.0")


@pytest.mark.parametrize("bundle_factory", ["memory"], indirect=True)
def test_an_untrusted_peer_cannot_name_the_client(world: World) -> None:
    app, _ = make_app(world)  # no trusted proxy
    email = world.email()
    world.register(email)
    with TestClient(app, client=("203.0.113.9", 5000)) as client:
        client.post(
            "/api/auth",
            json={"email": email, "password": PASSWORD},
            headers={"X-Request-Id": "login-2", "X-Forwarded-For": "198.51.100.7"},
        )
    [event] = [e for e in world.events.of("login.succeeded") if e.request_id == "login-2"]
    assert event.ip == "203.0.113.9"


# --- off the loop -----------------------------------------------------------------------------


@pytest.mark.parametrize("bundle_factory", ["memory"], indirect=True)
def test_the_flows_run_off_the_loop_and_the_verbs_on_it(world: World) -> None:
    """A login's bcrypt runs in the cpu lane, never on the loop's thread; the memory verbs are
    read on the loop (no thread hop)."""
    app, security = make_app(world)
    threads: dict[str, str] = {}
    hasher = world.kit.hasher
    real_verify = hasher.verify

    def spying_verify(*args: Any, **kwargs: Any) -> Any:
        threads["bcrypt"] = threading.current_thread().name
        return real_verify(*args, **kwargs)

    hasher.verify = spying_verify  # type: ignore[method-assign]

    @app.get("/loop")
    async def loop_thread() -> dict[str, str]:
        return {"thread": threading.current_thread().name}

    email = world.email()
    world.register(email)
    with TestClient(app) as client:
        client.post("/api/auth", json={"email": email, "password": PASSWORD})
        loop = client.get("/loop").json()["thread"]
    assert threads["bcrypt"].startswith("storno-cpu")
    assert threads["bcrypt"] != loop
    assert isinstance(security.verbs.sessions, InlineSessionStateStore)
    assert isinstance(security.verbs.api_keys._store, InlineApiKeyStore)
    assert isinstance(security.verbs.limiter._storage, InlineRateLimitStorage)


@pytest.mark.parametrize("bundle_factory", ["sqlite"], indirect=True)
def test_without_the_url_the_sql_reads_are_offloaded(world: World) -> None:
    security = StornoFastAPI(world.kit)
    assert isinstance(security.verbs.sessions, OffloadedSessionStateStore)
    assert isinstance(security.verbs.api_keys._store, OffloadedApiKeyStore)


def test_a_rate_limit_dependency_needs_a_known_policy(world: World) -> None:
    security = StornoFastAPI(world.kit)
    with pytest.raises(KeyError):
        security.rate_limit("no-such-policy")
    with pytest.raises(TypeError):
        StornoFastAPI(object())  # type: ignore[arg-type]


@pytest.mark.parametrize("bundle_factory", ["memory"], indirect=True)
@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/register",
            '{"email": "a@example.eu", "password": "long enough password", "name": "\\ud800"}',
        ),
        ("/register", '{"email": "a@example.eu", "password": "long enough \\udfff password"}'),
        # inside an object whose members are not checked as text: the body's own check
        ("/passkey/login", '{"credential": {"id": "\\udfff"}}'),
    ],
)
def test_a_lone_surrogate_is_a_400(client: TestClient, path: str, body: str) -> None:
    answer = client.post(
        f"/api/auth{path}", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_request"


@pytest.mark.parametrize("bundle_factory", ["memory"], indirect=True)
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mfa_token": "t", "method": "passkey"}, "credential"),
        ({"mfa_token": "t", "method": "totp"}, "code"),
        ({"mfa_token": "t", "method": "backup_code", "credential": {}}, "code"),
    ],
)
def test_an_mfa_answer_without_its_proof_is_a_400(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    answer = client.post("/api/auth/mfa/verify", json=body)
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_request"
    assert answer.json()["field"] == field


@pytest.mark.spec("ACC-5")
def test_registration_without_a_session_until_confirmed(clock: FrozenClock) -> None:
    kit = Kit(
        memory_bundle(),
        policy=kit_policy(require_confirmed_email=True),
        keys=kit_keys(),
        clock=clock,
        mailer=MailCatcher(),
    )
    app = FastAPI()
    setup(app, kit)
    with TestClient(app) as client:
        answer = client.post(
            "/api/auth/register", json={"email": "bo@example.eu", "password": PASSWORD}
        )
    assert answer.status_code == 201
    body = answer.json()
    assert "access_token" not in body
    assert body["user"]["email"] == "bo@example.eu"
    assert body["organization_id"]


@pytest.mark.parametrize("bundle_factory", ["memory"], indirect=True)
def test_without_limit_api_requests_are_not_counted(world: World) -> None:
    app, security = make_app(world, limit_api=False)
    assert repr(security) == f"StornoFastAPI({world.kit!r})"
    access = world.register().tokens.access_token
    with TestClient(app) as client:
        seen = client.get("/whoami", headers=bearer(access))
        assert seen.status_code == 200
        assert "RateLimit-Limit" not in seen.headers
        refused = client.get("/whoami", headers=bearer("not-a-token"))
        assert (refused.status_code, refused.json()["code"]) == (401, "invalid_token")
        assert "RateLimit-Limit" not in refused.headers


@pytest.mark.parametrize("bundle_factory", ["memory"], indirect=True)
def test_a_handler_may_set_its_own_rate_limit_headers(world: World) -> None:
    app, security = make_app(world)

    @app.get("/own", dependencies=[Depends(security.rate_limit("login"))])
    async def own() -> JSONResponse:
        return JSONResponse({"ok": True}, headers={"RateLimit-Limit": "7"})

    with TestClient(app) as client:
        answer = client.get("/own")
    assert answer.status_code == 200
    assert answer.headers.get_list("RateLimit-Limit") == ["7"]
    assert answer.headers["RateLimit-Remaining"] == "4"


@pytest.mark.parametrize("bundle_factory", ["memory"], indirect=True)
def test_a_validation_error_without_details_names_no_field(world: World) -> None:
    app, _ = make_app(world)

    @app.get("/checked")
    async def checked() -> None:
        raise RequestValidationError([])

    with TestClient(app) as client:
        answer = client.get("/checked", headers={"X-Request-Id": "req-5"})
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "The request is not valid.",
        "code": "invalid_request",
        "request_id": "req-5",
    }
