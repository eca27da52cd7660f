"""Sign in with Google over HTTP: account creation, no adoption of an account by email, linking
from the account with re-authentication (POST /api/v1/me/google)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import falcon.testing
import pytest
import sqlalchemy as sa

from reference_server import db, users
from reference_server.app import create_app
from reference_server.services import MemoryEmailSink, Services, build_services, run_now
from storno_security.audit import SecurityEventType
from storno_security.clock import FrozenClock
from storno_security.mfa import GOOGLE_LINK, VAULT_READ
from tests.oidc.provider import CLIENT_ID, FakeGoogle
from tests.server.api import FalconApi, fresh_email
from tests.server.conftest import make_settings
from tests.server.test_account_support import enable_mfa, step_up

LINK = "/api/v1/me/google"


@pytest.fixture(scope="module")
def google() -> FakeGoogle:
    return FakeGoogle()


@pytest.fixture
def google_services(tmp_path: Path, clock: FrozenClock, google: FakeGoogle) -> Iterator[Services]:
    settings = make_settings(tmp_path / "data", google_client_id=CLIENT_ID)
    services = build_services(
        settings, clock=clock, email=MemoryEmailSink(), google_fetcher=google, run_later=run_now
    )
    yield services
    services.close()


@pytest.fixture
def gapi(google_services: Services, clock: FrozenClock) -> FalconApi:
    return FalconApi(falcon.testing.TestClient(create_app(services=google_services)), clock=clock)


def test_first_google_login_creates_an_account_with_an_organization(
    gapi: FalconApi, google: FakeGoogle, clock: FrozenClock, google_services: Services
) -> None:
    token = google.token(clock.now(), sub="g-1", email="Maria@Example.EU", name="Maria")
    answer = gapi.post("/api/auth/google", {"id_token": token})
    assert answer.status == 200, answer.json
    assert answer.json["user"]["email"] == "maria@example.eu"
    assert answer.json["user"]["has_password"] is False
    with google_services.db.transaction() as conn:
        user = conn.execute(sa.select(db.users).where(db.users.c.google_subject == "g-1")).one()
        membership = conn.execute(
            sa.select(db.memberships).where(db.memberships.c.user_id == user.id)
        ).one()
    assert membership.role == "owner"
    # The second login finds the same account.
    again = gapi.post("/api/auth/google", {"id_token": google.token(clock.now(), sub="g-1")})
    assert again.json["user"]["id"] == user.id


def test_google_login_does_not_adopt_an_existing_account_by_email(
    gapi: FalconApi, google: FakeGoogle, clock: FrozenClock, google_services: Services
) -> None:
    user = gapi.register(email="ion@example.eu")
    token = google.token(clock.now(), sub="g-2", email="ion@example.eu")
    answer = gapi.post("/api/auth/google", {"id_token": token})
    assert answer.status == 409, answer.json
    assert answer.json["code"] == "account_exists"
    assert "link Google" in answer.json["error"]
    assert "access_token" not in answer.json
    row = users.get_user(google_services, user.user_id)
    assert row is not None
    assert row["google_subject"] is None
    # The holder of the account sees the attempt.
    (event,) = google_services.audit.store.query(
        organization_id=None, types=(SecurityEventType.LOGIN_FAILED,), actor_id=user.user_id
    )
    assert event.details == {"method": "google", "reason": "account_exists"}


def test_the_account_holder_links_google_then_signs_in_with_it(
    gapi: FalconApi, google: FakeGoogle, clock: FrozenClock, google_services: Services
) -> None:
    user = gapi.register(email="dana@example.eu")
    token = google.token(clock.now(), sub="g-link", email="dana@example.eu")
    refused = user.post(LINK, {"id_token": token})
    assert refused.status == 403, refused.json
    assert refused.json["code"] == "reauthentication_required"
    assert refused.json["accepted"] == ["current_password"]
    wrong = user.post(LINK, {"id_token": token, "current_password": "not the password"})
    assert wrong.status == 403, wrong.json
    assert wrong.json["code"] == "invalid_credentials"
    linked = user.post(LINK, {"id_token": token, "current_password": user.password})
    assert linked.status == 200, linked.json
    assert linked.json["google_linked"] is True
    assert linked.json["user"]["id"] == user.user_id
    events = google_services.audit.store.query(
        organization_id=None, types=(SecurityEventType.STEP_UP_VERIFIED,), actor_id=user.user_id
    )
    assert [e.details for e in events] == [{"action": GOOGLE_LINK, "method": "password"}]
    signed_in = gapi.post("/api/auth/google", {"id_token": token})
    assert signed_in.status == 200, signed_in.json
    assert signed_in.json["user"]["id"] == user.user_id
    # Linking the same Google account again changes nothing.
    again = user.post(LINK, {"id_token": token, "current_password": user.password})
    assert again.status == 200, again.json


def test_linking_with_mfa_on_needs_a_step_up_for_the_link(
    gapi: FalconApi, google: FakeGoogle, clock: FrozenClock
) -> None:
    user = gapi.register()
    enrolled = enable_mfa(gapi, user)
    token = google.token(clock.now(), sub="g-mfa", email=fresh_email("mfa"))
    password_only = user.post(LINK, {"id_token": token, "current_password": user.password})
    assert password_only.status == 403, password_only.json
    assert password_only.json["accepted"] == ["step_up_token"]
    clock.advance(30)
    other_action = step_up(gapi, user, VAULT_READ, code=gapi.totp_code(enrolled.secret))
    refused = user.post(LINK, {"id_token": token, "step_up_token": other_action})
    assert refused.status == 403, refused.json
    assert refused.json["code"] == "step_up_required"
    clock.advance(30)
    proof = step_up(gapi, user, GOOGLE_LINK, code=gapi.totp_code(enrolled.secret))
    token = google.token(clock.now(), sub="g-mfa", email=fresh_email("mfa"))
    linked = user.post(LINK, {"id_token": token, "step_up_token": proof})
    assert linked.status == 200, linked.json


def test_a_google_account_linked_to_someone_else_is_409(
    gapi: FalconApi, google: FakeGoogle, clock: FrozenClock, google_services: Services
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
    row = users.get_user(google_services, other.user_id)
    assert row is not None
    assert row["google_subject"] is None
    denied = google_services.audit.store.query(
        organization_id=None, types=(SecurityEventType.ACCESS_DENIED,), actor_id=other.user_id
    )
    assert [e.details["reason"] for e in denied] == ["google_account_taken"]


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


def test_linking_refuses_a_bad_id_token_before_anything(
    gapi: FalconApi, google: FakeGoogle, clock: FrozenClock
) -> None:
    user = gapi.register()
    token = google.token(clock.now(), sub="g-bad", aud="someone-else")
    refused = user.post(LINK, {"id_token": token, "current_password": user.password})
    assert refused.status == 401, refused.json
    assert refused.json["code"] == "invalid_id_token"


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
