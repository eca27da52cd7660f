"""Sign in with Google over HTTP: account creation, no adoption of an account by email, linking
from the account with re-authentication (POST /api/v1/me/google)."""

from __future__ import annotations

import json
from pathlib import Path

import falcon.testing
import pytest

from reference_server import wiring
from reference_server.app import create_app
from reference_server.mail import MemoryEmailSink
from reference_server.wiring import Server, build_server, run_now
from storno_security.audit import SecurityEventType
from storno_security.clock import FrozenClock
from tests.oidc.provider import CLIENT_ID, FakeGoogle
from tests.server.api import FalconApi, fresh_email
from tests.server.conftest import make_settings
from tests.server.test_account_support import (
    PASSWORD_PROOFS,
    enable_mfa,
    events,
    gapi,
    google,
    google_server,
    login,
    next_code,
    step_up,
)

__all__ = ["gapi", "google", "google_server"]  # fixtures

LINK = "/api/v1/me/google"
GOOGLE_LINK = "account.google_link"


def test_first_google_login_creates_an_account_with_an_organization(
    gapi: FalconApi, google: FakeGoogle, clock: FrozenClock, google_server: Server
) -> None:
    token = google.token(clock.now(), sub="g-1", email="Maria@Example.EU", name="Maria")
    answer = gapi.post("/api/auth/google", {"id_token": token})
    assert answer.status == 200, answer.json
    assert answer.json["user"]["email"] == "maria@example.eu"
    assert answer.json["user"]["has_password"] is False
    directory = google_server.kit.directory
    user = directory.find_user(google_subject="g-1")
    assert user is not None
    (membership,) = directory.memberships_of(user.user_id)
    assert membership.role.value == "owner"
    # The second login finds the same account.
    again = gapi.post("/api/auth/google", {"id_token": google.token(clock.now(), sub="g-1")})
    assert again.json["user"]["id"] == user.user_id


def test_google_login_does_not_adopt_an_existing_account_by_email(
    gapi: FalconApi, google: FakeGoogle, clock: FrozenClock, google_server: Server
) -> None:
    user = gapi.register(email="ion@example.eu")
    token = google.token(clock.now(), sub="g-2", email="ion@example.eu")
    answer = gapi.post("/api/auth/google", {"id_token": token})
    assert answer.status == 409, answer.json
    assert answer.json["code"] == "account_exists"
    assert "link Google" in answer.json["error"]
    assert "access_token" not in answer.json
    row = google_server.kit.directory.get_user(user.user_id)
    assert row is not None
    assert row.google_subject is None
    # The holder of the account sees the attempt.
    (event,) = events(google_server, SecurityEventType.LOGIN_FAILED, user.user_id)
    assert event.details == {"method": "google", "reason": "account_exists"}


@pytest.mark.spec("ACC-6")
def test_the_account_holder_links_google_then_signs_in_with_it(
    gapi: FalconApi, google: FakeGoogle, clock: FrozenClock, google_server: Server
) -> None:
    user = gapi.register(email=fresh_email("dana"))
    token = google.token(clock.now(), sub="g-link", email=user.email)
    refused = user.post(LINK, {"id_token": token})
    assert refused.status == 403, refused.json
    assert refused.json["code"] == "reauthentication_required"
    assert refused.json["accepted"] == PASSWORD_PROOFS
    wrong = user.post(LINK, {"id_token": token, "current_password": "not the password"})
    assert wrong.status == 403, wrong.json
    assert wrong.json["code"] == "invalid_credentials"
    linked = user.post(LINK, {"id_token": token, "current_password": user.password})
    assert linked.status == 200, linked.json
    assert linked.json["google_linked"] is True
    assert linked.json["user"]["id"] == user.user_id
    proofs = events(google_server, SecurityEventType.REAUTHENTICATED, user.user_id)
    assert sorted((e.outcome.value, dict(e.details)) for e in proofs) == [
        ("failure", {"action": GOOGLE_LINK, "method": "current_password", "reason": "mismatch"}),
        ("success", {"action": GOOGLE_LINK, "method": "current_password"}),
    ]
    signed_in = gapi.post("/api/auth/google", {"id_token": token})
    assert signed_in.status == 200, signed_in.json
    assert signed_in.json["user"]["id"] == user.user_id
    # Linking the same Google account again changes nothing.
    again = user.post(LINK, {"id_token": token, "current_password": user.password})
    assert again.status == 200, again.json


@pytest.mark.spec("ACC-6")
def test_linking_with_mfa_on_needs_a_step_up_for_the_link(
    gapi: FalconApi, google: FakeGoogle, clock: FrozenClock
) -> None:
    user = gapi.register()
    enrolled = enable_mfa(gapi, user)
    token = google.token(clock.now(), sub="g-mfa", email=fresh_email("mfa"))
    password_only = user.post(LINK, {"id_token": token, "current_password": user.password})
    assert password_only.status == 403, password_only.json
    assert password_only.json["accepted"] == ["step_up_token"]
    other_action = step_up(gapi, user, "vault.read", code=next_code(gapi, enrolled.secret))
    refused = user.post(LINK, {"id_token": token, "step_up_token": other_action})
    assert refused.status == 403, refused.json
    assert refused.json["code"] == "step_up_required"
    proof = step_up(gapi, user, GOOGLE_LINK, code=next_code(gapi, enrolled.secret))
    token = google.token(clock.now(), sub="g-mfa", email=fresh_email("mfa"))
    linked = user.post(LINK, {"id_token": token, "step_up_token": proof})
    assert linked.status == 200, linked.json


def test_a_google_account_linked_to_someone_else_is_409(
    gapi: FalconApi, google: FakeGoogle, clock: FrozenClock, google_server: Server
) -> None:
    owner = gapi.post(
        "/api/auth/google", {"id_token": google.token(clock.now(), sub="g-own", email="o@x.eu")}
    )
    assert owner.status == 200, owner.json
    other = gapi.register()
    token = google.token(clock.now(), sub="g-own", email="o@x.eu")
    taken = other.post(LINK, {"id_token": token, "current_password": other.password})
    assert taken.status == 409, taken.json
    assert taken.json["code"] == "google_account_taken"
    row = google_server.kit.directory.get_user(other.user_id)
    assert row is not None
    assert row.google_subject is None
    denied = events(google_server, SecurityEventType.ACCESS_DENIED, other.user_id)
    assert [dict(e.details) for e in denied] == [{"action": GOOGLE_LINK, "reason": "google_taken"}]


def test_a_second_google_account_cannot_replace_the_linked_one(
    gapi: FalconApi, google: FakeGoogle, clock: FrozenClock
) -> None:
    user = gapi.register()
    first = google.token(clock.now(), sub="g-first", email=fresh_email("a"))
    assert user.post(LINK, {"id_token": first, "current_password": user.password}).status == 200
    second = google.token(clock.now(), sub="g-second", email=fresh_email("b"))
    refused = user.post(LINK, {"id_token": second, "current_password": user.password})
    assert refused.status == 409, refused.json
    assert refused.json["code"] == "google_already_linked"


def test_linking_refuses_a_bad_id_token(
    gapi: FalconApi, google: FakeGoogle, clock: FrozenClock, google_server: Server
) -> None:
    user = gapi.register()
    token = google.token(clock.now(), sub="g-bad", aud="someone-else")
    refused = user.post(LINK, {"id_token": token, "current_password": user.password})
    assert refused.status == 401, refused.json
    assert refused.json["code"] == "invalid_id_token"
    row = google_server.kit.directory.get_user(user.user_id)
    assert row is not None
    assert row.google_subject is None


def test_linking_is_404_when_google_is_not_configured(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    answer = user.post(LINK, {"id_token": "x.y.z", "current_password": user.password})
    assert answer.status == 404
    assert answer.json["code"] == "not_enabled"


def test_a_password_only_account_cannot_be_logged_into_with_a_google_only_account_password(
    gapi: FalconApi, google: FakeGoogle, clock: FrozenClock
) -> None:
    gapi.post(
        "/api/auth/google",
        {"id_token": google.token(clock.now(), sub="g-3", email="nopw@example.eu")},
    )
    # A Google-only account has no password: every password fails like a wrong one.
    answer = gapi.post("/api/auth", {"email": "nopw@example.eu", "password": "any password"})
    assert answer.status == 401
    assert answer.json["code"] == "invalid_credentials"


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": "someone-else"},
        {"iss": "https://evil.example"},
        {"email_verified": False},
        {"exp": 0},
    ],
)
def test_bad_id_tokens_are_refused(
    gapi: FalconApi, google: FakeGoogle, clock: FrozenClock, changes: dict[str, object]
) -> None:
    answer = gapi.post("/api/auth/google", {"id_token": google.token(clock.now(), **changes)})
    assert answer.status == 401
    assert answer.json["code"] == "invalid_id_token"


def test_a_forged_token_is_refused(gapi: FalconApi, google: FakeGoogle, clock: FrozenClock) -> None:
    forged = google.forged(clock.now(), header={"alg": "none", "kid": "key-1"})
    answer = gapi.post("/api/auth/google", {"id_token": forged})
    assert answer.status == 401


def test_google_login_is_404_when_not_configured(falcon_api: FalconApi) -> None:
    answer = falcon_api.post("/api/auth/google", {"id_token": "x.y.z"})
    assert answer.status == 404
    assert answer.json["code"] == "not_enabled"


@pytest.mark.spec("RL-1")
def test_google_login_is_limited_to_ten_a_minute(gapi: FalconApi) -> None:
    statuses = [gapi.post("/api/auth/google", {"id_token": "x.y.z"}).status for _ in range(11)]
    assert statuses == [401] * 10 + [429]


# --- review finding (r-authz, MEDIUM): Google sign-in adopted an existing account found by
# email (pre-account takeover). Failed before its fix.


def test_google_sign_in_does_not_adopt_an_account_a_squatter_holds_the_password_of(
    gapi: FalconApi, google: FakeGoogle, clock: FrozenClock
) -> None:
    victim_email = fresh_email("victim")
    squatter = gapi.register(email=victim_email, password="the squatter knows this")
    token = google.token(clock.now(), sub="g-victim", email=victim_email)
    victim = gapi.post("/api/auth/google", {"id_token": token})
    assert victim.status == 409, victim.json
    assert victim.json["code"] == "account_exists"
    assert "access_token" not in victim.json
    # The squatter's account did not gain the victim's Google identity: logging in with Google
    # still lands nowhere, while the squatter's password keeps opening only the squatter's.
    again = gapi.post("/api/auth/google", {"id_token": token})
    assert again.status == 409
    assert login(gapi, squatter).status == 200


def test_without_an_injected_fetcher_the_server_reads_googles_published_keys(
    tmp_path: Path, clock: FrozenClock, google: FakeGoogle, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Google's key document, published at a URL the default fetcher reads (a file here)
    published = tmp_path / "certs.json"
    published.write_text(json.dumps(google.document()))
    monkeypatch.setattr(wiring, "GOOGLE_JWKS_URL", published.as_uri())
    server = build_server(
        make_settings(tmp_path / "data", google_client_id=CLIENT_ID),
        clock=clock,
        email=MemoryEmailSink(),
        run_later=run_now,
    )
    try:
        api = FalconApi(falcon.testing.TestClient(create_app(server=server)), clock=clock)
        token = google.token(clock.now(), sub="g-url", email="url@example.eu")
        answer = api.post("/api/auth/google", {"id_token": token})
        assert answer.status == 200, answer.json
        assert answer.json["user"]["email"] == "url@example.eu"
        # a token signed with a key Google does not publish is refused
        google.add_key("key-2", publish=False)
        forged = google.token(clock.now(), sub="g-url", kid="key-2")
        assert api.post("/api/auth/google", {"id_token": forged}).status == 401
    finally:
        server.close()
    assert google.fetches == []  # the server read the URL, never the fake's own method
