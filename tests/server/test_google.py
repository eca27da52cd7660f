"""Sign in with Google over HTTP: account creation, linking by verified email, MFA (MFA-4)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import falcon.testing
import pytest
import sqlalchemy as sa

from reference_server import db
from reference_server.app import create_app
from reference_server.services import MemoryEmailSink, Services, build_services, run_now
from storno_security.clock import FrozenClock
from tests.oidc.provider import CLIENT_ID, FakeGoogle
from tests.server.api import FalconApi
from tests.server.conftest import make_settings


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


def test_google_login_links_an_existing_account_by_verified_email(
    gapi: FalconApi, google: FakeGoogle, clock: FrozenClock
) -> None:
    user = gapi.register(email="ion@example.eu")
    token = google.token(clock.now(), sub="g-2", email="ion@example.eu")
    answer = gapi.post("/api/auth/google", {"id_token": token})
    assert answer.status == 200
    assert answer.json["user"]["id"] == user.user_id


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
