"""Authentication over HTTP: register, login, refresh, logout, cookies, rate limits."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from reference_server.wiring import Server
from storno_security.clock import FrozenClock
from tests.server.api import Api, FalconApi, fresh_email
from tests.server.conftest import falcon_api_with_policy

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

#: A public route that still authenticates a credential when one is sent (``/health`` is the
#: liveness probe: never limited, it looks at no credential).
_JWKS = "/.well-known/jwks.json"


def _same_error(a: Any, b: Any) -> None:
    assert a.status == b.status
    assert {k: v for k, v in a.json.items() if k != "request_id"} == {
        k: v for k, v in b.json.items() if k != "request_id"
    }


# -- end to end, on every backend ---------------------------------------------------------


@pytest.mark.spec("ACC-1")
@pytest.mark.spec("SRV-3")
def test_register_login_refresh_reuse_logout(api: Api) -> None:
    user = api.register()
    me = api.post("/api/auth", {"email": user.email.upper(), "password": user.password})
    assert me.status == 200, me.json
    tokens = me.json
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 3600
    assert tokens["user"]["email"] == user.email

    rotated = api.post("/api/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert rotated.status == 200
    assert rotated.json["refresh_token"] != tokens["refresh_token"]

    # REF-3: once the successor was used, the old token again is reuse: the whole family
    # dies, the newest tokens too. (Before that, within the REF-5 grace, it is a retry.)
    newest = api.post("/api/auth/refresh", {"refresh_token": rotated.json["refresh_token"]})
    assert newest.status == 200
    reused = api.post("/api/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert reused.status == 401
    assert reused.json["code"] == "refresh_token_reused"
    after = api.post("/api/auth/refresh", {"refresh_token": newest.json["refresh_token"]})
    assert after.status == 401
    dead = api.get("/.well-known/jwks.json", token=newest.json["access_token"])
    assert dead.status == 401
    assert dead.json["code"] == "invalid_token"

    # Logout revokes that login's family and its access tokens (REF-4), not others.
    logout = api.post(
        "/api/auth/logout", {"refresh_token": user.refresh_token}, token=user.access_token
    )
    assert logout.status == 204
    assert api.post("/api/auth/refresh", {"refresh_token": user.refresh_token}).status == 401
    assert api.get("/.well-known/jwks.json", token=user.access_token).status == 401


@pytest.mark.spec("ACC-1")
def test_login_errors_never_tell_whether_the_email_exists(api: Api) -> None:
    user = api.register()
    wrong = api.post("/api/auth", {"email": user.email, "password": "not the password"})
    unknown = api.post("/api/auth", {"email": fresh_email(), "password": "not the password"})
    malformed = api.post("/api/auth", {"email": "not an email", "password": "not the password"})
    for answer in (wrong, unknown, malformed):
        assert answer.status == 401
    _same_error(wrong, unknown)
    _same_error(wrong, malformed)


@pytest.mark.spec("RL-1")
@pytest.mark.spec("RL-3")
def test_login_is_limited_to_five_a_minute_per_ip(api: Api) -> None:
    body = {"email": fresh_email(), "password": "whatever password"}
    answers = [api.post("/api/auth", body) for _ in range(6)]
    assert [a.status for a in answers] == [401] * 5 + [429]
    over = answers[-1]
    assert over.json["error"] == "Too many requests. Please try again later."
    assert int(over.header("Retry-After") or 0) >= 1
    assert over.header("RateLimit-Limit") == "5"
    assert over.header("RateLimit-Remaining") == "0"
    assert [a.header("RateLimit-Remaining") for a in answers[:5]] == ["4", "3", "2", "1", "0"]
    # Another client is not affected.
    assert api.with_ip().post("/api/auth", body).status == 401


@pytest.mark.spec("SRV-4")
def test_cookie_mode_keeps_the_refresh_token_out_of_the_body(api: Api) -> None:
    user = api.register()
    login = api.post("/api/auth", {"email": user.email, "password": user.password, "cookie": True})
    assert login.status == 200
    assert "refresh_token" not in login.json
    cookie = login.header("Set-Cookie") or ""
    assert cookie.startswith("storno_refresh=")
    for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/api/auth"):
        assert attribute.lower() in cookie.lower()
    assert login.json["access_token"] not in cookie
    token = login.cookies["storno_refresh"]
    rotated = api.post("/api/auth/refresh", {}, headers={"Cookie": f"storno_refresh={token}"})
    assert rotated.status == 200
    assert "refresh_token" not in rotated.json
    assert rotated.cookies["storno_refresh"] != token


def test_health_jwks_openapi_and_errors_are_json(api: Api) -> None:
    health = api.get("/health")
    assert health.status == 200
    assert health.json["status"] == "ok"
    jwks = api.get("/.well-known/jwks.json")
    assert jwks.status == 200
    assert {key["alg"] for key in jwks.json["keys"]} == {"RS256"}
    assert api.get("/openapi.json").json["openapi"] == "3.1.0"
    missing = api.get("/no/such/route")
    assert missing.status == 404
    assert missing.json["code"] == "not_found"


# -- detailed, in-process with a frozen clock -------------------------------------------


@pytest.mark.spec("ACC-1")
def test_registration_creates_user_organization_and_owner(
    falcon_api: FalconApi, server: Server
) -> None:
    user = falcon_api.register(email="  Ana.Example@Example.EU ")
    assert user.email.strip()  # the raw input
    directory = server.kit.directory
    row = directory.get_user(user.user_id)
    (membership,) = directory.memberships_of(user.user_id)
    org = directory.get_organization(user.organization_id)
    assert row is not None
    assert org is not None
    assert row.email == "ana.example@example.eu"
    assert "$2b$" in (row.password_hash or "")
    assert membership.role.value == "owner"
    assert membership.is_default
    assert membership.organization_id == org.organization_id


@pytest.mark.spec("ACC-5")
def test_a_registration_answers_without_tokens_when_login_waits_for_confirmation(
    tmp_path: Path, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with falcon_api_with_policy(
        tmp_path, clock, monkeypatch, require_confirmed_email=True
    ) as falcon_api:
        email = fresh_email()
        body = {"email": email, "password": "correct horse battery"}
        registered = falcon_api.post("/api/auth/register", body)
        assert registered.status == 201, registered.json
        assert set(registered.json) == {"user", "organization_id"}
        assert registered.json["user"]["email_confirmed"] is False
        assert registered.header("Set-Cookie") is None
        refused = falcon_api.post("/api/auth", body)
        assert (refused.status, refused.json["code"]) == (403, "email_not_confirmed")
        assert falcon_api.confirm_email(email).status == 200
        assert falcon_api.post("/api/auth", body).status == 200


@pytest.mark.spec("MFA-4")
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mfa_token": "t", "method": "passkey", "code": "123456"}, "credential"),
        ({"mfa_token": "t", "method": "totp", "credential": {}}, "code"),
    ],
)
def test_an_mfa_answer_without_its_proof_is_a_400(
    falcon_api: FalconApi, body: dict[str, Any], field: str
) -> None:
    answer = falcon_api.post("/api/auth/mfa/verify", body)
    assert (answer.status, answer.json["code"], answer.json["field"]) == (
        400,
        "invalid_request",
        field,
    )


@pytest.mark.spec("SRV-4")
def test_logout_spends_the_refresh_cookie_and_clears_it(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    login = falcon_api.post(
        "/api/auth", {"email": user.email, "password": user.password, "cookie": True}
    )
    cookie = {"Cookie": f"storno_refresh={login.cookies['storno_refresh']}"}
    access = login.json["access_token"]
    out = falcon_api.post("/api/auth/logout", {}, token=access, headers=cookie)
    assert out.status == 204, out.json
    cleared = out.header("Set-Cookie") or ""
    assert cleared.startswith(("storno_refresh=;", 'storno_refresh="";')), cleared  # emptied
    attributes = {part.strip().lower() for part in cleared.split(";")[1:]}
    # expired now, with the attributes it was set with (else a browser may keep it)
    assert {"path=/api/auth", "httponly", "samesite=strict"} <= attributes
    assert "expires=thu, 01 jan 1970 00:00:00 gmt" in attributes
    spent = falcon_api.post("/api/auth/refresh", {}, headers=cookie)
    assert spent.status == 401


@pytest.mark.spec("ACC-1")
def test_duplicate_and_invalid_registration(falcon_api: FalconApi) -> None:
    email = fresh_email()
    falcon_api.register(email=email)
    again = falcon_api.post(
        "/api/auth/register", {"email": email.upper(), "password": "another long password"}
    )
    assert again.status == 409
    assert again.json["code"] == "email_taken"
    bad = falcon_api.post("/api/auth/register", {"email": "nope", "password": "long password!"})
    assert bad.status == 422
    assert bad.json["code"] == "invalid_email"
    weak = falcon_api.post("/api/auth/register", {"email": fresh_email(), "password": "short"})
    assert weak.status == 422
    assert weak.json["code"] == "weak_password"


@pytest.mark.spec("PW-4")
@pytest.mark.spec("RL-5")
def test_unknown_email_costs_a_bcrypt_and_limited_requests_cost_none(
    falcon_api: FalconApi, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []
    real = server.kit.hasher.verify

    def spy(password: str, stored: Any) -> Any:
        calls.append(stored)
        return real(password, stored)

    monkeypatch.setattr(server.kit.hasher, "verify", spy)
    body = {"email": fresh_email(), "password": "whatever password"}
    for _ in range(5):
        assert falcon_api.post("/api/auth", body).status == 401
    assert calls == [None] * 5  # unknown user: the dummy-hash path, same work
    for _ in range(20):
        assert falcon_api.post("/api/auth", body).status == 429
    assert len(calls) == 5  # RL-5: no bcrypt for a refused request
    falcon_api.clock.advance(timedelta(seconds=61))  # type: ignore[union-attr]
    assert falcon_api.post("/api/auth", body).status == 401


@pytest.mark.spec("RL-1")
def test_register_is_limited_to_ten_an_hour(falcon_api: FalconApi) -> None:
    statuses = [
        falcon_api.post("/api/auth/register", {"email": fresh_email(), "password": "short"}).status
        for _ in range(11)
    ]
    assert statuses == [422] * 10 + [429]


@pytest.mark.spec("RL-2")
def test_bad_credentials_are_counted_before_they_are_refused(falcon_api: FalconApi) -> None:
    first = falcon_api.get(_JWKS, headers={"Authorization": "Bearer not.a.jwt"})
    second = falcon_api.get(_JWKS, headers={"Authorization": "Bearer not.a.jwt"})
    assert first.status == second.status == 401
    assert int(first.header("RateLimit-Remaining") or 0) > int(
        second.header("RateLimit-Remaining") or 0
    )
    assert first.header("WWW-Authenticate") == 'Bearer error="invalid_token"'


@pytest.mark.spec("KEY-4")
def test_an_api_key_sent_as_bearer_is_refused(falcon_api: FalconApi) -> None:
    answer = falcon_api.get(_JWKS, headers={"Authorization": "Bearer af_" + "a" * 64})
    assert answer.status == 401
    assert answer.json["code"] == "invalid_api_key"


@pytest.mark.spec("RL-2")
def test_authenticated_and_anonymous_callers_use_different_buckets(
    falcon_api: FalconApi,
) -> None:
    user = falcon_api.register()
    anonymous = falcon_api.get(_JWKS)
    authenticated = user.get(_JWKS)
    assert anonymous.header("RateLimit-Limit") == "10000"
    assert authenticated.header("RateLimit-Limit") == "50000"


@pytest.mark.spec("SRV-2")
@pytest.mark.parametrize(
    ("raw", "content_type", "status", "code"),
    [
        (b"{", "application/json", 400, "invalid_request"),
        (b"[1, 2]", "application/json", 400, "invalid_request"),
        (b'{"email": 5, "password": "x"}', "application/json", 400, "invalid_request"),
        (b'{"email": "a@b.eu"}', "application/json", 400, "invalid_request"),
        (b"\xff\xfe", "application/json", 400, "invalid_request"),
        (b'{"email": NaN}', "application/json", 400, "invalid_request"),
        (b"email=a", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b"{}", "text/plain", 415, "unsupported_media_type"),
    ],
)
def test_malformed_bodies_get_clear_4xx_errors(
    falcon_api: FalconApi, raw: bytes, content_type: str, status: int, code: str
) -> None:
    answer = falcon_api.post("/api/auth", raw=raw, content_type=content_type)
    assert answer.status == status
    assert answer.json["code"] == code
    assert isinstance(answer.json["error"], str)


@pytest.mark.spec("SRV-2")
def test_oversized_body_is_413(falcon_api: FalconApi) -> None:
    raw = b'{"email": "' + b"a" * 2_000_000 + b'"}'
    answer = falcon_api.post("/api/auth", raw=raw, content_type="application/json")
    assert answer.status == 413


@pytest.mark.spec("SRV-2")
def test_unexpected_failures_answer_500_without_a_trace(
    falcon_api: FalconApi, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = falcon_api.register()

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(server.kit.sessions, "start", boom)
    answer = falcon_api.post("/api/auth", {"email": user.email, "password": user.password})
    assert answer.status == 500
    assert answer.json["code"] == "internal_error"
    assert b"secret internal detail" not in answer.body
    assert b"Traceback" not in answer.body


@pytest.mark.spec("SRV-2")
def test_method_not_allowed_is_json(falcon_api: FalconApi) -> None:
    answer = falcon_api.get("/api/auth")
    assert answer.status == 405
    assert answer.json["code"] == "method_not_allowed"


def test_security_headers_and_request_ids(falcon_api: FalconApi) -> None:
    answer = falcon_api.get("/health", headers={"X-Request-Id": "abc-123"})
    assert answer.header("X-Request-Id") == "abc-123"
    assert answer.header("X-Content-Type-Options") == "nosniff"
    assert answer.header("X-Frame-Options") == "DENY"
    assert answer.header("Cache-Control") == "no-store"
    assert "frame-ancestors 'none'" in (answer.header("Content-Security-Policy") or "")
    hostile = falcon_api.get("/health", headers={"X-Request-Id": "x\u00e9\r\nSet-Cookie: a=b"})
    assert hostile.header("X-Request-Id") != "x\u00e9\r\nSet-Cookie: a=b"
    assert len(hostile.header("X-Request-Id") or "") == 32


def test_logout_needs_the_owner_of_the_refresh_token(falcon_api: FalconApi) -> None:
    ana = falcon_api.register()
    bob = falcon_api.register()
    answer = falcon_api.post(
        "/api/auth/logout", {"refresh_token": ana.refresh_token}, token=bob.access_token
    )
    assert answer.status == 401
    # Ana's login is untouched.
    assert falcon_api.post("/api/auth/refresh", {"refresh_token": ana.refresh_token}).status == 200
    assert falcon_api.post("/api/auth/logout", {"refresh_token": "x"}).status == 401


def test_refresh_needs_a_token(falcon_api: FalconApi) -> None:
    answer = falcon_api.post("/api/auth/refresh", {})
    assert answer.status == 400
    assert answer.json["field"] == "refresh_token"


@pytest.mark.spec("JWT-1")
def test_access_tokens_expire_after_an_hour(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    assert user.get(_JWKS).status == 200
    falcon_api.clock.advance(timedelta(seconds=3600 + 61))  # type: ignore[union-attr]
    assert user.get(_JWKS).status == 401


@pytest.mark.spec("SRV-5")
def test_liveness_is_never_limited_and_reads_no_credential(falcon_api: FalconApi) -> None:
    for _ in range(300):
        answer = falcon_api.get("/health", headers={"Authorization": "Bearer not.a.jwt"})
        assert answer.status == 200
        assert answer.header("RateLimit-Limit") is None
    assert falcon_api.get("/ready").json["checks"]["database"] == "ok"


@pytest.mark.spec("REF-5")
def test_a_refresh_whose_answer_was_lost_can_be_retried(api: Api) -> None:
    user = api.register()
    lost = api.post("/api/auth/refresh", {"refresh_token": user.refresh_token})
    assert lost.status == 200  # ...but the client never read it
    retried = api.post("/api/auth/refresh", {"refresh_token": user.refresh_token})
    assert retried.status == 200
    assert api.get("/.well-known/jwks.json", token=retried.json["access_token"]).status == 200
    # only once, and the lost successor is dead: presenting it is theft (REF-3)
    again = api.post("/api/auth/refresh", {"refresh_token": user.refresh_token})
    assert again.status == 401
    assert again.json["code"] == "refresh_token_reused"


@pytest.mark.spec("SRV-4")
@pytest.mark.parametrize(
    "headers",
    [{}, {"Content-Type": "application/x-www-form-urlencoded"}, {"Content-Type": "text/plain"}],
)
def test_the_refresh_cookie_is_read_only_from_json_requests(
    falcon_api: FalconApi, headers: dict[str, str]
) -> None:
    login = falcon_api.register()
    answer = falcon_api.post(
        "/api/auth", {"email": login.email, "password": login.password, "cookie": True}
    )
    cookie = answer.cookies["storno_refresh"]
    sent = {"Cookie": f"storno_refresh={cookie}", **headers}
    refused = falcon_api.request("POST", "/api/auth/refresh", raw=b"", headers=sent)
    assert refused.status == 415
    # an empty JSON request reads it
    taken = falcon_api.request(
        "POST",
        "/api/auth/refresh",
        raw=b"",
        content_type="application/json",
        headers={"Cookie": f"storno_refresh={cookie}"},
    )
    assert taken.status == 200, taken.json
