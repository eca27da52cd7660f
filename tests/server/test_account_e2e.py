"""End to end over every backend (Falcon test client, gunicorn on SQLite, gunicorn with 2
workers on PostgreSQL + Redis): MFA enrol and challenge with a backup code, password change
killing tokens, API key create/use/revoke, passkey register and login (MFA-1..5, REF-4,
KEY-2..4, PK-1..4)."""

from __future__ import annotations

import pytest

from tests.passkeys.authenticator import SoftAuthenticator
from tests.server.api import Api
from tests.server.test_account_support import ORIGIN, enable_mfa, login, register_passkey


@pytest.mark.spec("MFA-1")
@pytest.mark.spec("MFA-3")
@pytest.mark.spec("MFA-4")
def test_mfa_enrol_then_login_needs_a_second_factor_and_a_backup_code_works_once(
    api: Api,
) -> None:
    user = api.register()
    enrolled = enable_mfa(api, user, steps_ahead=0)
    assert len(enrolled.backup_codes) == 10
    assert len(set(enrolled.backup_codes)) == 10
    status = user.get("/api/v1/mfa")
    assert status.json["enabled"] is True
    assert status.json["backup_codes_left"] == 10

    challenge = login(api, user)
    assert challenge.status == 200
    assert challenge.json["mfa_required"] is True
    assert "access_token" not in challenge.json
    assert set(challenge.json["mfa_methods"]) == {"totp", "backup_code"}
    # The step after the one that confirmed enrolment (MFA-2 refuses that one again).
    verified = api.post(
        "/api/auth/mfa/verify",
        {
            "mfa_token": challenge.json["mfa_token"],
            "method": "totp",
            "code": api.totp_code(enrolled.secret, steps_ahead=1),
        },
    )
    assert verified.status == 200, verified.json
    me = api.get("/api/v1/me", token=verified.json["access_token"])
    assert me.status == 200
    assert me.json["user"]["id"] == user.user_id
    assert me.json["mfa"]["enabled"] is True

    code = enrolled.backup_codes[0]
    first = login(api, user)
    used = api.post(
        "/api/auth/mfa/verify",
        {"mfa_token": first.json["mfa_token"], "method": "backup_code", "code": code},
    )
    assert used.status == 200, used.json
    assert used.json["backup_codes_left"] == 9
    second = login(api, user)
    again = api.post(
        "/api/auth/mfa/verify",
        {"mfa_token": second.json["mfa_token"], "method": "backup_code", "code": code},
    )
    assert again.status == 401
    assert again.json["code"] == "invalid_mfa_code"


@pytest.mark.spec("REF-4")
def test_password_change_kills_old_access_and_refresh_tokens_at_once(api: Api) -> None:
    user = api.register()
    old_access, old_refresh = user.access_token, user.refresh_token
    changed = user.post(
        "/api/v1/me/password",
        {"current_password": user.password, "new_password": "a brand new passphrase"},
    )
    assert changed.status == 200, changed.json
    assert api.get("/api/v1/me", token=old_access).status == 401
    refreshed = api.post("/api/auth/refresh", {"refresh_token": old_refresh})
    assert refreshed.status == 401
    assert api.get("/api/v1/me", token=changed.json["access_token"]).status == 200
    assert (
        api.post("/api/auth/refresh", {"refresh_token": changed.json["refresh_token"]}).status
        == 200
    )
    assert login(api, user).status == 401
    assert login(api, user, "a brand new passphrase").status == 200


@pytest.mark.spec("KEY-2")
@pytest.mark.spec("KEY-3")
@pytest.mark.spec("KEY-4")
def test_api_key_create_use_and_revoke(api: Api) -> None:
    user = api.register()
    created = user.post(
        "/api/v1/api-keys",
        {"name": "CI export", "scope": "read", "current_password": user.password},
    )
    assert created.status == 201, created.json
    key = created.json["key"]
    assert key.startswith("af_")
    key_id = created.json["key_id"]
    assert created.json["organization_id"] == user.organization_id

    me = api.get("/api/v1/me", api_key=key)
    assert me.status == 200, me.json
    assert me.json["credential"] == {"kind": "api_key", "key_id": key_id, "scope": "read"}
    assert me.json["organization"]["id"] == user.organization_id
    assert "invoice.view" in me.json["permissions"]
    assert "invoice.create" not in me.json["permissions"]
    assert "password.change" not in me.json["permissions"]

    listed = user.get("/api/v1/api-keys")
    assert listed.status == 200
    assert [k["key_id"] for k in listed.json["api_keys"]] == [key_id]
    assert key not in listed.body.decode()
    assert "key" not in listed.json["api_keys"][0]

    assert user.delete(f"/api/v1/api-keys/{key_id}").status == 204
    refused = api.get("/api/v1/me", api_key=key)
    assert refused.status == 401
    assert refused.json["code"] == "invalid_api_key"


@pytest.mark.spec("PK-1")
@pytest.mark.spec("PK-4")
def test_passkey_register_then_login_by_email_and_usernameless(api: Api) -> None:
    user = api.register()
    authenticator = SoftAuthenticator()
    created = register_passkey(user, authenticator, name="Laptop")
    listed = user.get("/api/v1/passkeys")
    assert [p["id"] for p in listed.json["passkeys"]] == [created["id"]]

    for body in ({"email": user.email}, None):
        options = api.post("/api/auth/passkey/login/options", body)
        assert options.status == 200, options.json
        if body is None:
            assert not options.json["options"].get("allowCredentials")
        else:
            assert options.json["options"]["allowCredentials"][0]["id"] == created["id"]
        assertion = authenticator.get(options.json["options"], origin=ORIGIN)
        logged_in = api.post("/api/auth/passkey/login", {"credential": assertion})
        assert logged_in.status == 200, logged_in.json
        me = api.get("/api/v1/me", token=logged_in.json["access_token"])
        assert me.json["user"]["id"] == user.user_id


@pytest.mark.spec("MFA-5")
def test_passkey_as_the_second_factor_of_a_password_login(api: Api) -> None:
    user = api.register()
    authenticator = SoftAuthenticator()
    register_passkey(user, authenticator)
    enable_mfa(api, user)
    challenge = login(api, user)
    assert challenge.json["mfa_required"] is True
    assert "passkey" in challenge.json["mfa_methods"]
    assertion = authenticator.get(challenge.json["passkey_options"], origin=ORIGIN)
    verified = api.post(
        "/api/auth/mfa/verify",
        {"mfa_token": challenge.json["mfa_token"], "method": "passkey", "credential": assertion},
    )
    assert verified.status == 200, verified.json
    assert api.get("/api/v1/me", token=verified.json["access_token"]).status == 200


def test_me_answers_each_change_of_the_account_at_once_on_every_worker(api: Api) -> None:
    # GET /me answers from what the kit decided for the state of the user's records (issue 18):
    # a change made through any worker is in the next answer of every worker.
    owner = api.register()
    first = owner.get("/api/v1/me").json
    for _ in range(6):  # each worker answers from the same records several times
        assert owner.get("/api/v1/me").json == first
    renamed = owner.patch("/api/v1/me", {"name": "Renamed Owner"})
    assert renamed.status == 200, renamed.json
    for _ in range(6):
        me = owner.get("/api/v1/me")
        assert me.status == 200
        assert me.json["user"]["name"] == "Renamed Owner"
        assert me.json["role"] == "owner"
        assert me.json["mfa"]["enabled"] is False
    enable_mfa(api, owner, steps_ahead=0)
    for _ in range(6):
        mfa = owner.get("/api/v1/me").json["mfa"]
        assert mfa["enabled"] is True
        assert mfa["backup_codes_left"] == 10
