"""Fixes for the security review of the account endpoints (branch r-authz).

Each test is adapted from the review's proof of concept (tests/server/test_review_authz.py on
r-authz) and failed before the fix it names:

* HIGH: a passkey was registered with nothing but an access token;
* MEDIUM: TOTP was enrolled with nothing but an access token;
* MEDIUM: Google sign-in adopted an existing account found by email (pre-account takeover);
* LOW: the user's own credentials were authorized against an organization membership;
* re-authentication that checks a password is limited like a login (RL-5).

Four tests guard what the fixes must keep and held before them too: the register call takes no
credential made for options it did not grant the caller, backup codes need a step-up for that
act, API keys still cannot act on the account (KEY-5), a deleted account cannot act at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from reference_server import db
from reference_server.app import create_app
from reference_server.services import MemoryEmailSink, Services, build_services, run_now
from storno_security.audit import SecurityEventType
from storno_security.clock import FrozenClock
from storno_security.mfa import MFA_DISABLE, PASSKEY_REGISTER, VAULT_READ
from tests.oidc.provider import CLIENT_ID, FakeGoogle
from tests.passkeys.authenticator import SoftAuthenticator
from tests.server.api import FalconApi, User, fresh_email
from tests.server.conftest import make_settings
from tests.server.tenancy_support import add_member
from tests.server.test_account_support import (
    ORIGIN,
    enable_mfa,
    login,
    register_passkey,
    step_up,
)

MEMBERS = "/api/v1/members"
OPTIONS = "/api/v1/passkeys/register/options"
REGISTER = "/api/v1/passkeys/register"
SETUP = "/api/v1/mfa/totp/setup"


def _hand_over(first: User, second: User) -> None:
    """``second`` becomes the Owner of ``first``'s organization; ``first`` stays an Admin."""
    add_member(first, second, "admin")
    moved = first.post(f"{MEMBERS}/transfer-ownership", {"user_id": second.user_id})
    assert moved.status == 200, moved.json


def _without_organization(api: FalconApi) -> User:
    """A user whose only organization was handed over, and who was then removed from it."""
    first = api.register()
    second = api.register()
    _hand_over(first, second)
    removed = second.delete(f"{MEMBERS}/{first.user_id}", organization=first.organization_id)
    assert removed.status == 204, removed.json
    return first


def _denied(services: Services, user_id: str) -> list[dict[str, Any]]:
    events = services.audit.store.query(
        organization_id=None, types=(SecurityEventType.ACCESS_DENIED,), actor_id=user_id
    )
    return [dict(e.details) for e in events]


# --- Google fixtures -------------------------------------------------------------------------


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


def _google_only(gapi: FalconApi, google: FakeGoogle, clock: FrozenClock) -> str:
    token = google.token(clock.now(), sub=fresh_email("sub"), email=fresh_email("g"))
    answer = gapi.post("/api/auth/google", {"id_token": token})
    assert answer.status == 200, answer.json
    access: str = answer.json["access_token"]
    return access


# --- HIGH: passkey registration --------------------------------------------------------------


@pytest.mark.spec("MFA-6")
def test_registering_a_passkey_demands_a_step_up_when_mfa_is_on(
    falcon_api: FalconApi, services: Services
) -> None:
    victim = falcon_api.register()
    enrolled = enable_mfa(falcon_api, victim)
    # The access token alone, or with the password, no longer buys registration options.
    for proof in ({}, {"current_password": victim.password}):
        options = victim.post(OPTIONS, proof)
        assert options.status == 403, options.json
        assert options.json["code"] == "reauthentication_required"
        assert options.json["accepted"] == ["step_up_token"]
    assert _denied(services, victim.user_id)[0] == {
        "action": PASSKEY_REGISTER,
        "reason": "step_up_missing",
    }
    # A step-up for another act does not do.
    falcon_api.clock.advance(30)  # type: ignore[union-attr]
    other = step_up(falcon_api, victim, VAULT_READ, code=falcon_api.totp_code(enrolled.secret))
    refused = victim.post(OPTIONS, {"step_up_token": other})
    assert refused.status == 403, refused.json
    assert refused.json["code"] == "step_up_required"
    # With a fresh second factor for passkey.register, the owner adds a passkey.
    falcon_api.clock.advance(30)  # type: ignore[union-attr]
    granted = step_up(
        falcon_api, victim, PASSKEY_REGISTER, code=falcon_api.totp_code(enrolled.secret)
    )
    created = register_passkey(victim, SoftAuthenticator(), reauth={"step_up_token": granted})
    assert created["name"] == "Laptop"
    # The step-up token was spent by the options call.
    assert victim.post(OPTIONS, {"step_up_token": granted}).status == 403


def test_the_register_call_accepts_no_credential_without_options_granted_to_the_caller(
    falcon_api: FalconApi,
) -> None:
    victim = falcon_api.register()
    enable_mfa(falcon_api, victim)
    attacker = falcon_api.register()
    device = SoftAuthenticator()
    # Options the attacker was granted for their own account...
    granted = attacker.post(OPTIONS, {"current_password": attacker.password})
    assert granted.status == 200, granted.json
    credential = device.create(granted.json["options"], origin=ORIGIN)
    # ...do not register a passkey on the victim's account with the victim's stolen token.
    stolen = victim.post(REGISTER, {"credential": credential, "name": "Mine"})
    assert stolen.status == 401, stolen.json
    assert stolen.json["code"] == "invalid_passkey"
    # Nor do options the attacker made up (a challenge the server never issued).
    made_up = dict(granted.json["options"], challenge="A" * 43)
    forged = victim.post(
        REGISTER, {"credential": device.create(made_up, origin=ORIGIN), "name": "Mine"}
    )
    assert forged.status == 401, forged.json
    assert victim.get("/api/v1/passkeys").json["passkeys"] == []


def test_passkey_registration_without_mfa_demands_the_current_password(
    falcon_api: FalconApi,
) -> None:
    user = falcon_api.register()
    missing = user.post(OPTIONS)
    assert missing.status == 403, missing.json
    assert missing.json["code"] == "reauthentication_required"
    assert missing.json["accepted"] == ["current_password"]
    wrong = user.post(OPTIONS, {"current_password": "not the password"})
    assert wrong.status == 403, wrong.json
    assert wrong.json["code"] == "invalid_credentials"
    assert register_passkey(user, SoftAuthenticator())["name"] == "Laptop"


def test_a_passwordless_account_registers_a_passkey_only_just_after_a_login(
    gapi: FalconApi, google: FakeGoogle, clock: FrozenClock
) -> None:
    access = _google_only(gapi, google, clock)
    assert gapi.post(OPTIONS, token=access).status == 200
    clock.advance(6 * 60)
    stale = gapi.post(OPTIONS, token=access)
    assert stale.status == 403, stale.json
    assert stale.json["code"] == "reauthentication_required"
    assert stale.json["accepted"] == ["fresh_login"]


# --- MEDIUM: TOTP enrolment ------------------------------------------------------------------


def test_enrolling_totp_demands_the_current_password(
    falcon_api: FalconApi, services: Services
) -> None:
    victim = falcon_api.register()
    setup = victim.post(SETUP)
    assert setup.status == 403, setup.json
    assert setup.json["code"] == "reauthentication_required"
    assert setup.json["accepted"] == ["current_password"]
    wrong = victim.post(SETUP, {"current_password": "the thief guesses"})
    assert wrong.status == 403, wrong.json
    assert wrong.json["code"] == "invalid_credentials"
    status = victim.get("/api/v1/mfa").json
    assert status["pending_enrolment"] is False
    assert _denied(services, victim.user_id) == [
        {"action": "mfa.totp.setup", "reason": "password_missing"}
    ]
    assert victim.post(SETUP, {"current_password": victim.password}).status == 200


def test_a_passwordless_account_enrols_totp_only_just_after_a_login(
    gapi: FalconApi, google: FakeGoogle, clock: FrozenClock
) -> None:
    access = _google_only(gapi, google, clock)
    clock.advance(6 * 60)
    stale = gapi.post(SETUP, token=access)
    assert stale.status == 403, stale.json
    assert stale.json["accepted"] == ["fresh_login"]
    fresh = _google_only(gapi, google, clock)
    assert gapi.post(SETUP, token=fresh).status == 200


def test_regenerating_backup_codes_takes_a_step_up_for_that_act_only(
    falcon_api: FalconApi,
) -> None:
    user = falcon_api.register()
    enrolled = enable_mfa(falcon_api, user)
    password = user.post("/api/v1/mfa/backup-codes", {"current_password": user.password})
    assert password.status == 403, password.json
    falcon_api.clock.advance(30)  # type: ignore[union-attr]
    other = step_up(falcon_api, user, MFA_DISABLE, code=falcon_api.totp_code(enrolled.secret))
    refused = user.post("/api/v1/mfa/backup-codes", {"step_up_token": other})
    assert refused.status == 403, refused.json
    assert refused.json["code"] == "step_up_required"


# --- MEDIUM: Google pre-account takeover -----------------------------------------------------


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


# --- LOW: own-account actions need no organization -------------------------------------------


def test_a_user_without_an_organization_can_still_secure_their_account(
    falcon_api: FalconApi,
) -> None:
    first = _without_organization(falcon_api)
    me = first.get("/api/v1/me")
    assert me.status == 200, me.json
    assert (me.json["organization"], me.json["role"], me.json["permissions"]) == (None, None, [])
    assert me.json["user"]["id"] == first.user_id
    enable_mfa(falcon_api, first)
    assert first.get("/api/v1/mfa").json["enabled"] is True
    assert first.get("/api/v1/passkeys").status == 200
    changed = first.post(
        "/api/v1/me/password",
        {"current_password": first.password, "new_password": "another long password"},
    )
    assert changed.status == 200, changed.json
    # API keys are an organization's: still refused without one.
    first.access_token = changed.json["access_token"]
    keys = first.get("/api/v1/api-keys")
    assert keys.status == 400, keys.json
    assert keys.json["code"] == "organization_required"


def test_an_organization_cannot_forbid_a_user_to_change_their_own_password(
    falcon_api: FalconApi,
) -> None:
    first = falcon_api.register()
    second = falcon_api.register()
    _hand_over(first, second)
    restricted = second.patch(
        f"{MEMBERS}/{first.user_id}",
        {"role": "viewer", "permissions": ["invoice.view"]},
        organization=first.organization_id,
    )
    assert restricted.status == 200, restricted.json
    assert first.post(SETUP, {"current_password": first.password}).status == 200
    changed = first.post(
        "/api/v1/me/password",
        {"current_password": first.password, "new_password": "another long password"},
    )
    assert changed.status == 200, changed.json


def test_an_api_key_still_cannot_act_on_the_account_without_an_organization(
    falcon_api: FalconApi,
) -> None:
    user = falcon_api.register()
    key = user.post("/api/v1/api-keys", {"name": "k", "scope": "admin"}).json["key"]
    for method, path, body in (
        ("POST", SETUP, {"current_password": user.password}),
        ("POST", OPTIONS, {"current_password": user.password}),
        (
            "POST",
            "/api/v1/me/password",
            {"current_password": user.password, "new_password": "x" * 20},
        ),
    ):
        refused = falcon_api.request(method, path, json_body=body, api_key=key)
        assert refused.status == 403, refused.json
        assert refused.json["code"] == "forbidden"


def test_a_deleted_account_cannot_act_on_itself(falcon_api: FalconApi, services: Services) -> None:
    user = falcon_api.register()
    with services.db.transaction() as conn:
        conn.execute(
            db.users.update()
            .where(db.users.c.id == user.user_id)
            .values(deleted_at=services.clock.now())
        )
    response = user.post(SETUP, {"current_password": user.password})
    assert response.status == 401, response.json


# --- rate limits: a password check is limited like a login (RL-5) ----------------------------


@pytest.mark.spec("RL-5")
@pytest.mark.parametrize("path", [SETUP, OPTIONS, "/api/v1/me/google"])
def test_re_authentication_by_password_is_limited_like_a_login(
    gapi: FalconApi, google: FakeGoogle, clock: FrozenClock, path: str
) -> None:
    user = gapi.register()
    body: dict[str, Any] = {"current_password": "wrong guess"}
    if path.endswith("/google"):
        body["id_token"] = google.token(clock.now(), sub="g-rl", email=fresh_email("rl"))
    statuses = [user.post(path, body).status for _ in range(6)]
    assert statuses == [403] * 5 + [429], statuses
