"""Re-authentication of a passwordless account rests on the login time, not the token's age.

Review finding: the "fresh login" check read the access token's ``iat``, which every refresh
renews, so a stolen refresh token counted as a login just now. Failed before its fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import falcon.testing
import pytest

from reference_server.app import create_app
from reference_server.services import MemoryEmailSink, Services, build_services, run_now
from storno_security.clock import FrozenClock
from tests.oidc.provider import CLIENT_ID, FakeGoogle
from tests.server.api import FalconApi
from tests.server.conftest import make_settings


@pytest.fixture
def google() -> FakeGoogle:
    return FakeGoogle()


@pytest.fixture
def gapi(tmp_path: Path, clock: FrozenClock, google: FakeGoogle) -> Iterator[FalconApi]:
    services: Services = build_services(
        make_settings(tmp_path / "data", google_client_id=CLIENT_ID),
        clock=clock,
        email=MemoryEmailSink(),
        google_fetcher=google,
        run_later=run_now,
    )
    yield FalconApi(falcon.testing.TestClient(create_app(services=services)), clock=clock)
    services.close()


def _google_login(gapi: FalconApi, google: FakeGoogle, clock: FrozenClock) -> dict[str, str]:
    token = google.token(clock.now(), sub="g-fresh", email="fresh@example.eu")
    answer = gapi.post("/api/auth/google", {"id_token": token})
    assert answer.status == 200, answer.json
    tokens: dict[str, str] = answer.json
    return tokens


def test_a_login_just_now_counts_as_reauthentication(
    gapi: FalconApi, google: FakeGoogle, clock: FrozenClock
) -> None:
    tokens = _google_login(gapi, google, clock)
    answer = gapi.post("/api/v1/passkeys/register/options", {}, token=tokens["access_token"])
    assert answer.status == 200, answer.json


def test_a_refreshed_token_is_not_a_fresh_login(
    gapi: FalconApi, google: FakeGoogle, clock: FrozenClock
) -> None:
    tokens = _google_login(gapi, google, clock)
    clock.advance(timedelta(minutes=6))
    refreshed = gapi.post("/api/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert refreshed.status == 200
    answer = gapi.post(
        "/api/v1/passkeys/register/options", {}, token=refreshed.json["access_token"]
    )
    assert answer.status == 403
    assert answer.json["code"] == "reauthentication_required"
    assert answer.json["accepted"] == ["fresh_login"]
