"""Forgot and reset password over HTTP (ACC-2, REF-4, RL-1)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import falcon.testing
import pytest

from reference_server.app import create_app
from reference_server.mail import LogEmailSink
from reference_server.wiring import build_server, run_now
from storno_security.clock import FrozenClock
from tests.server.api import Api, FalconApi, fresh_email
from tests.server.conftest import make_settings

Mailbox = Callable[[], list[dict[str, str]]]
_TOKEN = re.compile(r"token=(rst_[A-Za-z0-9_\-%]+)")


def _wait_for_mail(mailbox: Mailbox, to: str) -> dict[str, str]:
    # A real server sends the mail after it answers; wait for its background thread.
    deadline = time.monotonic() + 15
    while True:
        for mail in mailbox():
            # (registration mails a confirmation link too: only the reset mail counts here)
            if mail["to"] == to and mail["subject"] == "Reset your password":
                return mail
        if time.monotonic() > deadline:
            raise AssertionError(f"no mail to {to}")
        time.sleep(0.05)


def _token_of(mail: dict[str, str]) -> str:
    found = _TOKEN.search(mail["body"])
    assert found, mail["body"]
    return found.group(1).replace("%2D", "-").replace("%5F", "_")


@pytest.mark.spec("ACC-2")
@pytest.mark.spec("REF-4")
def test_forgot_and_reset_password(api: Api, mailbox: Mailbox) -> None:
    user = api.register()
    asked = api.post("/api/auth/forgot-password", {"email": user.email.upper()})
    assert asked.status == 202
    token = _token_of(_wait_for_mail(mailbox, user.email))
    reset = api.with_ip().post(
        "/api/auth/reset-password", {"token": token, "new_password": "a brand new passphrase"}
    )
    assert reset.status == 200, reset.json
    # Every session died at once (REF-4): access and refresh tokens.
    assert user.get("/.well-known/jwks.json").status == 401
    assert api.post("/api/auth/refresh", {"refresh_token": user.refresh_token}).status == 401
    # The token worked once.
    again = api.with_ip().post(
        "/api/auth/reset-password", {"token": token, "new_password": "yet another passphrase"}
    )
    assert again.status == 400
    assert again.json["code"] == "invalid_reset_token"
    old = api.with_ip().post("/api/auth", {"email": user.email, "password": user.password})
    assert old.status == 401
    new = api.with_ip().post(
        "/api/auth", {"email": user.email, "password": "a brand new passphrase"}
    )
    assert new.status == 200


@pytest.mark.spec("ACC-2")
def test_forgot_password_answers_the_same_for_unknown_emails(api: Api) -> None:
    user = api.register()
    known = api.post("/api/auth/forgot-password", {"email": user.email})
    unknown = api.post("/api/auth/forgot-password", {"email": fresh_email()})
    malformed = api.post("/api/auth/forgot-password", {"email": "not an email"})
    assert known.status == unknown.status == malformed.status == 202
    assert known.json == unknown.json == malformed.json


@pytest.mark.spec("ACC-2")
def test_unknown_emails_get_no_mail(falcon_api: FalconApi, falcon_mailbox: Mailbox) -> None:
    falcon_api.post("/api/auth/forgot-password", {"email": fresh_email()})
    assert falcon_mailbox() == []


@pytest.mark.spec("ACC-2")
def test_reset_tokens_expire_after_an_hour(falcon_api: FalconApi, falcon_mailbox: Mailbox) -> None:
    user = falcon_api.register()
    falcon_api.post("/api/auth/forgot-password", {"email": user.email})
    token = _token_of(_wait_for_mail(falcon_mailbox, user.email))
    assert falcon_api.clock is not None
    falcon_api.clock.advance(timedelta(hours=1, seconds=1))  # type: ignore[attr-defined]
    late = falcon_api.post(
        "/api/auth/reset-password", {"token": token, "new_password": "a brand new passphrase"}
    )
    assert late.status == 400
    assert late.json["code"] == "invalid_reset_token"


@pytest.mark.spec("ACC-2")
def test_a_weak_password_does_not_burn_the_token(
    falcon_api: FalconApi, falcon_mailbox: Mailbox
) -> None:
    user = falcon_api.register()
    falcon_api.post("/api/auth/forgot-password", {"email": user.email})
    token = _token_of(_wait_for_mail(falcon_mailbox, user.email))
    weak = falcon_api.post("/api/auth/reset-password", {"token": token, "new_password": "short"})
    assert weak.status == 422
    good = falcon_api.post(
        "/api/auth/reset-password", {"token": token, "new_password": "a brand new passphrase"}
    )
    assert good.status == 200


@pytest.mark.spec("ACC-2")
@pytest.mark.parametrize("token", ["", "rst_", "rst_" + "A" * 43, "x" * 600, "not a token"])
def test_bad_reset_tokens_are_one_error(falcon_api: FalconApi, token: str) -> None:
    answer = falcon_api.post(
        "/api/auth/reset-password", {"token": token, "new_password": "a brand new passphrase"}
    )
    assert answer.status == 400
    assert answer.json["code"] in ("invalid_reset_token", "invalid_request")


@pytest.mark.spec("RL-1")
def test_forgot_and_reset_are_limited_to_three_per_fifteen_minutes(
    falcon_api: FalconApi,
) -> None:
    forgot = [
        falcon_api.post("/api/auth/forgot-password", {"email": fresh_email()}).status
        for _ in range(4)
    ]
    assert forgot == [202, 202, 202, 429]
    reset = [
        falcon_api.post(
            "/api/auth/reset-password", {"token": "rst_x", "new_password": "long enough pw"}
        ).status
        for _ in range(4)
    ]
    assert reset == [400, 400, 400, 429]
    assert falcon_api.clock is not None
    falcon_api.clock.advance(timedelta(minutes=15, seconds=1))  # type: ignore[attr-defined]
    assert falcon_api.post("/api/auth/forgot-password", {"email": fresh_email()}).status == 202


def test_the_log_sink_never_logs_the_reset_link(
    tmp_path: Path, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    server = build_server(
        make_settings(tmp_path / "data"), clock=clock, email=LogEmailSink(), run_later=run_now
    )
    api = FalconApi(falcon.testing.TestClient(create_app(server=server)), clock=clock)
    user = api.register()
    seen: list[str] = []
    real_issue = server.kit.resets.issue

    def spy(user_id: str) -> object:
        issued = real_issue(user_id)
        seen.append(issued.token)
        return issued

    server.kit.resets.issue = spy  # type: ignore[method-assign]
    with caplog.at_level(logging.DEBUG):
        assert api.post("/api/auth/forgot-password", {"email": user.email}).status == 202
    assert len(seen) == 1
    assert "Reset your password" in caplog.text
    assert seen[0] not in caplog.text
    assert seen[0][4:20] not in caplog.text
    server.close()
