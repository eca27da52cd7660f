"""The account endpoints in detail, in-process with a frozen clock: KEY-5 refusals, ``/me``,
the display name, password change revoking sessions (REF-4), API keys, own-account acts that
need no organization, malformed input answered 4xx, never 500."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from reference_server.wiring import Server
from storno_security.api_keys.policy import ApiKeyPolicy
from storno_security.audit import SecurityEventType
from storno_security.clock import FrozenClock
from storno_security.kit import Caller
from tests.server.api import FalconApi, User, fresh_email
from tests.server.conftest import falcon_api_with_policy
from tests.server.test_account_support import (
    api_key,
    enable_mfa,
    events,
    login,
    next_code,
    step_up,
)

# --- KEY-5: API keys cannot manage credentials -----------------------------------------------

CREDENTIAL_ENDPOINTS = [
    ("POST", "/api/v1/api-keys", {"name": "x", "scope": "read"}),
    ("GET", "/api/v1/api-keys", None),
    ("DELETE", "/api/v1/api-keys/abcdefghijkl", None),
    ("POST", "/api/v1/me/password", {"current_password": "x", "new_password": "y" * 20}),
    ("POST", "/api/v1/me/email", {"email": "x@example.eu", "current_password": "x"}),
    ("PATCH", "/api/v1/me", {"name": "Mallory"}),
    ("POST", "/api/v1/me/google", {"id_token": "x.y.z"}),
    ("GET", "/api/v1/mfa", None),
    ("POST", "/api/v1/mfa/totp/setup", None),
    ("POST", "/api/v1/mfa/totp/confirm", {"code": "123456"}),
    ("POST", "/api/v1/mfa/step-up", {"action": "apikey.create", "method": "totp", "code": "1"}),
    ("POST", "/api/v1/mfa/step-up/passkey-options", None),
    ("POST", "/api/v1/mfa/backup-codes", {"step_up_token": "x"}),
    ("POST", "/api/v1/mfa/disable", {"step_up_token": "x"}),
    ("POST", "/api/v1/passkeys/register/options", None),
    ("POST", "/api/v1/passkeys/register", {"credential": {}, "name": "x"}),
    ("GET", "/api/v1/passkeys", None),
    ("PATCH", "/api/v1/passkeys/AAAA", {"name": "x"}),
    ("DELETE", "/api/v1/passkeys/AAAA", None),
]


@pytest.mark.spec("KEY-5")
@pytest.mark.parametrize(("method", "path", "body"), CREDENTIAL_ENDPOINTS)
def test_an_admin_api_key_cannot_manage_credentials(
    falcon_api: FalconApi, method: str, path: str, body: Any
) -> None:
    user = falcon_api.register()
    key = api_key(user, "admin")
    response = falcon_api.request(method, path, json_body=body, api_key=key)
    assert response.status == 403, response.json
    assert response.json["code"] == "forbidden"


@pytest.mark.spec("KEY-5")
def test_a_key_cannot_be_given_a_credential_permission(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    for permission in ("apikey.manage", "password.change", "mfa.manage", "passkey.manage"):
        refused = user.post(
            "/api/v1/api-keys",
            {
                "name": "k",
                "scope": "admin",
                "permissions": [permission],
                "current_password": user.password,
            },
        )
        assert refused.status == 403, (permission, refused.json)
    assert user.get("/api/v1/api-keys").json["api_keys"] == []


@pytest.mark.spec("KEY-4")
def test_a_key_with_an_explicit_list_gets_only_that(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    key = api_key(user, "admin", permissions=["org.view", "invoice.view"])
    me = falcon_api.get("/api/v1/me", api_key=key)
    assert me.status == 200
    assert me.json["permissions"] == ["invoice.view", "org.view"]


# --- /me -------------------------------------------------------------------------------------


def test_me_shows_user_organization_role_permissions_and_mfa(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    me = user.get("/api/v1/me")
    assert me.status == 200
    assert me.json["user"]["email"] == user.email
    assert me.json["organization"]["id"] == user.organization_id
    assert me.json["role"] == "owner"
    assert {"password.change", "mfa.manage", "apikey.manage", "org.delete"} <= set(
        me.json["permissions"]
    )
    assert me.json["mfa"]["enabled"] is False
    assert me.json["credential"] == {"kind": "user"}


def test_me_without_credentials_is_401(falcon_api: FalconApi) -> None:
    response = falcon_api.get("/api/v1/me")
    assert response.status == 401
    assert response.json["code"] == "authentication_required"


def test_patch_me_changes_the_name_only(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    changed = user.patch("/api/v1/me", {"name": "  Ana Ștefănescu ", "email": "evil@example.eu"})
    assert changed.status == 200
    assert changed.json["user"]["name"] == "Ana Ștefănescu"
    assert changed.json["user"]["email"] == user.email


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "   "},
        {"name": 5},
        {"name": "a\nb"},
        {"name": "a\u202eb"},
        {"name": "x" * 201},
    ],
)
def test_patch_me_refuses_bad_names(falcon_api: FalconApi, body: dict[str, Any]) -> None:
    user = falcon_api.register()
    response = user.patch("/api/v1/me", body)
    assert response.status == 400, response.json
    assert response.json["field"] == "name"


# --- password --------------------------------------------------------------------------------


def test_wrong_current_password_is_403_and_changes_nothing(
    falcon_api: FalconApi, server: Server
) -> None:
    user = falcon_api.register()
    response = user.post(
        "/api/v1/me/password",
        {"current_password": "not the password", "new_password": "another long passphrase"},
    )
    assert response.status == 403
    assert response.json["code"] == "invalid_credentials"
    assert user.get("/api/v1/me").status == 200  # the session lives on
    assert login(falcon_api, user).status == 200
    failed = events(server, SecurityEventType.PASSWORD_CHANGED, user.user_id)
    assert [e.outcome.value for e in failed] == ["failure"]


def test_weak_new_password_is_422_and_sessions_live(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    response = user.post(
        "/api/v1/me/password", {"current_password": user.password, "new_password": "short"}
    )
    assert response.status == 422
    assert response.json["code"] == "weak_password"
    assert user.get("/api/v1/me").status == 200


@pytest.mark.spec("REF-4")
def test_password_change_revokes_every_session_and_is_audited(
    falcon_api: FalconApi, server: Server
) -> None:
    user = falcon_api.register()
    other = login(falcon_api, user).json  # a second login on another device
    changed = user.post(
        "/api/v1/me/password",
        {"current_password": user.password, "new_password": "a brand new passphrase"},
    )
    assert changed.status == 200
    assert falcon_api.get("/api/v1/me", token=other["access_token"]).status == 401
    assert (
        falcon_api.post("/api/auth/refresh", {"refresh_token": other["refresh_token"]}).status
        == 401
    )
    (event,) = events(server, SecurityEventType.PASSWORD_CHANGED, user.user_id)
    assert event.details["session_count"] == 2


# --- address ---------------------------------------------------------------------------------


@pytest.mark.spec("ACC-5")
@pytest.mark.spec("ACC-6")
def test_changing_the_address_needs_a_proof_and_a_new_confirmation(
    falcon_api: FalconApi,
) -> None:
    user = falcon_api.register()
    old_link = falcon_api.mail_token(user.email, "/confirm-email")  # never used
    taken = falcon_api.register().email
    new = fresh_email("moved")
    refused = user.post("/api/v1/me/email", {"email": new})
    assert refused.status == 403, refused.json
    assert refused.json["code"] == "reauthentication_required"
    clash = user.post("/api/v1/me/email", {"email": taken, "current_password": user.password})
    assert clash.status == 409, clash.json
    assert clash.json["code"] == "email_taken"
    moved = user.post("/api/v1/me/email", {"email": new.upper(), "current_password": user.password})
    assert moved.status == 200, moved.json
    assert moved.json["user"]["email"] == new
    assert moved.json["user"]["email_confirmed"] is False
    # The link mailed to the old address is dead; the one mailed to the new one confirms it.
    stale = falcon_api.post("/api/auth/confirm-email", {"token": old_link})
    assert stale.status == 400, stale.json
    assert falcon_api.confirm_email(new).status == 200
    assert user.get("/api/v1/me").json["user"]["email_confirmed"] is True
    assert login(falcon_api, user).status == 401  # the old address logs in no more


# --- API keys --------------------------------------------------------------------------------


def test_another_users_key_cannot_be_revoked(falcon_api: FalconApi) -> None:
    ana = falcon_api.register()
    bob = falcon_api.register()
    key = api_key(bob, "read")
    key_id = bob.get("/api/v1/api-keys").json["api_keys"][0]["key_id"]
    assert ana.delete(f"/api/v1/api-keys/{key_id}").status == 404
    assert falcon_api.get("/api/v1/me", api_key=key).status == 200
    assert ana.delete("/api/v1/api-keys/" + "x" * 300).status == 404


def test_key_expiry_is_honoured(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    now = falcon_api.now()
    past = (now - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    refused = user.post(
        "/api/v1/api-keys",
        {"name": "short", "scope": "read", "expires_at": past, "current_password": user.password},
    )
    assert refused.status == 422
    assert refused.json["code"] == "invalid_expiry"
    expires = (now + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    key = api_key(user, "read", expires_at=expires)
    assert falcon_api.get("/api/v1/me", api_key=key).status == 200
    assert falcon_api.clock is not None
    falcon_api.clock.advance(3601)  # type: ignore[attr-defined]
    assert falcon_api.get("/api/v1/me", api_key=key).status == 401


def test_an_expiry_past_the_year_9000_is_a_400(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    far = user.post(
        "/api/v1/api-keys",
        {"name": "k", "scope": "read", "expires_at": "9500-01-01T00:00:00Z"},
    )
    assert (far.status, far.json["code"], far.json["field"]) == (
        400,
        "invalid_request",
        "expires_at",
    )


def test_an_expiry_beyond_the_policys_longest_lifetime_is_a_422(
    tmp_path: Path, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    capped = ApiKeyPolicy(max_lifetime=timedelta(days=90))
    with falcon_api_with_policy(tmp_path, clock, monkeypatch, api_keys=capped) as falcon_api:
        user = falcon_api.register()
        later = (clock.now() + timedelta(days=91)).isoformat().replace("+00:00", "Z")
        refused = user.post(
            "/api/v1/api-keys",
            {"name": "k", "scope": "read", "expires_at": later, "current_password": user.password},
        )
        assert (refused.status, refused.json["code"]) == (422, "invalid_api_key_request")
        assert "max_lifetime" in refused.json["error"]
        assert user.get("/api/v1/api-keys").json["api_keys"] == []


# --- own-account acts need no organization ---------------------------------------------------
# review finding (r-authz, LOW): the user's own credentials were authorized against an
# organization membership. Each test failed before its fix.


def _caller(server: Server, user: User) -> Caller:
    caller = server.kit.authenticate(f"Bearer {user.access_token}")
    assert caller is not None
    return caller


def _hand_over(server: Server, first: User, second: User) -> None:
    """``second`` (a confirmed address) becomes the Owner of ``first``'s organization;
    ``first`` stays an Admin (the kit's own tenancy flows, not under test here)."""
    kit = server.kit
    invitation = kit.invite(_caller(server, first), second.email, role="admin")
    kit.accept_invitation(_caller(server, second), invitation.invitation_id)
    kit.transfer_ownership(
        _caller(server, first), second.user_id, organization=first.organization_id
    )


def test_a_user_without_an_organization_can_still_secure_their_account(
    falcon_api: FalconApi, server: Server
) -> None:
    first = falcon_api.register()
    second = falcon_api.register(confirm=True)
    _hand_over(server, first, second)
    server.kit.remove_member(
        _caller(server, second), first.user_id, organization=first.organization_id
    )
    me = first.get("/api/v1/me")
    assert me.status == 200, me.json
    assert (me.json["organization"], me.json["role"], me.json["permissions"]) == (None, None, [])
    assert me.json["user"]["id"] == first.user_id
    enrolled = enable_mfa(falcon_api, first)
    assert first.get("/api/v1/mfa").json["enabled"] is True
    assert first.get("/api/v1/passkeys").status == 200
    # With MFA on, the password change takes a step-up for it besides the password (ACC-6).
    token = step_up(
        falcon_api,
        first,
        "account.password_change",
        code=next_code(falcon_api, enrolled.secret),
    )
    changed = first.post(
        "/api/v1/me/password",
        {
            "current_password": first.password,
            "new_password": "another long password",
            "step_up_token": token,
        },
    )
    assert changed.status == 200, changed.json
    # API keys are an organization's: still refused without one.
    first.access_token = changed.json["access_token"]
    keys = first.get("/api/v1/api-keys")
    assert keys.status == 400, keys.json
    assert keys.json["code"] == "organization_required"


def test_an_organization_cannot_forbid_a_user_to_change_their_own_password(
    falcon_api: FalconApi, server: Server
) -> None:
    first = falcon_api.register()
    second = falcon_api.register(confirm=True)
    _hand_over(server, first, second)
    server.kit.update_member(
        _caller(server, second),
        first.user_id,
        role="viewer",
        permissions=["invoice.view"],
        organization=first.organization_id,
    )
    assert first.post("/api/v1/mfa/totp/setup", {"current_password": first.password}).status == 200
    changed = first.post(
        "/api/v1/me/password",
        {"current_password": first.password, "new_password": "another long password"},
    )
    assert changed.status == 200, changed.json


@pytest.mark.spec("KEY-5")
def test_an_api_key_still_cannot_act_on_the_account_without_an_organization(
    falcon_api: FalconApi,
) -> None:
    user = falcon_api.register()
    key = api_key(user, "admin")
    for method, path, body in (
        ("POST", "/api/v1/mfa/totp/setup", {"current_password": user.password}),
        ("POST", "/api/v1/passkeys/register/options", {"current_password": user.password}),
        (
            "POST",
            "/api/v1/me/password",
            {"current_password": user.password, "new_password": "x" * 20},
        ),
    ):
        refused = falcon_api.request(method, path, json_body=body, api_key=key)
        assert refused.status == 403, refused.json
        assert refused.json["code"] == "forbidden"


def test_a_deleted_account_cannot_act_on_itself(falcon_api: FalconApi, server: Server) -> None:
    user = falcon_api.register()
    # Deleted behind the API's back (deletion proper also ends the sessions): the token lives.
    deleted = server.kit.directory.update_user(
        user.user_id, expected={}, changes={"deleted_at": server.clock.now()}
    )
    assert deleted is not None
    response = user.post("/api/v1/mfa/totp/setup", {"current_password": user.password})
    assert response.status == 401, response.json
    assert response.json["code"] == "invalid_token"


# --- malformed input: 4xx, never 500 ---------------------------------------------------------

MALFORMED = [
    ("/api/v1/api-keys", {"name": "k"}, 400),
    ("/api/v1/api-keys", {"name": "k", "scope": "root"}, 400),
    ("/api/v1/api-keys", {"name": "k", "scope": "read", "permissions": "invoice.view"}, 400),
    ("/api/v1/api-keys", {"name": "k", "scope": "read", "permissions": []}, 400),
    ("/api/v1/api-keys", {"name": "k", "scope": "read", "permissions": ["nope.nope"]}, 422),
    ("/api/v1/api-keys", {"name": "k", "scope": "read", "expires_at": "tomorrow"}, 400),
    ("/api/v1/api-keys", {"name": "k", "scope": "read", "expires_at": "2030-01-01T00:00:00"}, 400),
    (
        "/api/v1/api-keys",
        {"name": "k", "scope": "read", "expires_at": "9999-12-31T23:59:59-05:00"},
        400,
    ),
    ("/api/v1/api-keys", {"name": ["k"], "scope": "read"}, 400),
    # ACC-6: a step-up token may stand for the password even with MFA off; a bad one is 403.
    ("/api/v1/api-keys", {"name": "k", "scope": "read", "step_up_token": "t"}, 403),
    ("/api/v1/api-keys", {"name": "k", "scope": "read", "step_up_token": 7}, 400),
    ("/api/v1/me/password", {"current_password": "x"}, 400),
    ("/api/v1/me/password", {"current_password": 1, "new_password": "y"}, 400),
    ("/api/v1/me/email", {"current_password": "x"}, 400),
    ("/api/v1/me/email", {"email": 5}, 400),
    ("/api/v1/me/email", {"email": "not an address", "current_password": "x"}, 422),
    ("/api/v1/mfa/totp/confirm", {}, 400),
    ("/api/v1/mfa/totp/confirm", {"code": 123456}, 400),
    ("/api/v1/mfa/step-up", {"action": "root", "method": "totp", "code": "1"}, 400),
    ("/api/v1/mfa/step-up", {"action": "vault.read", "method": "sms", "code": "1"}, 400),
    ("/api/v1/mfa/step-up", {"action": "vault.read", "method": "passkey", "credential": "x"}, 400),
    ("/api/v1/mfa/step-up", {"action": "vault.read", "method": "passkey", "credential": {}}, 401),
    ("/api/v1/mfa/step-up", {"action": "vault.read", "method": "passkey"}, 400),
    ("/api/v1/mfa/step-up", {"action": "vault.read", "method": "totp"}, 400),
    ("/api/v1/mfa/step-up", {"action": "vault.read", "method": "totp", "code": "x" * 65}, 400),
    ("/api/v1/mfa/disable", {"step_up_token": 5}, 400),
    ("/api/v1/mfa/totp/setup", {"current_password": 5}, 400),
    ("/api/v1/mfa/totp/setup", {"current_password": "x" * 4097}, 400),
    ("/api/v1/passkeys/register/options", {"step_up_token": 7}, 400),
    ("/api/v1/passkeys/register/options", {"current_password": "a\x00b"}, 400),
    ("/api/v1/me/google", {}, 400),
    ("/api/v1/me/google", {"id_token": 5}, 400),
    ("/api/v1/me/google", {"id_token": "x.y.z", "current_password": ["x"]}, 400),
    ("/api/v1/passkeys/register", {"name": "x"}, 400),
    ("/api/v1/passkeys/register", {"credential": {"id": "x"}, "name": ""}, 400),
    ("/api/v1/passkeys/register", {"credential": {"id": "x"}, "name": "x"}, 401),
    ("/api/v1/passkeys/register", {"credential": {"id": "x"}, "name": "x" * 65}, 400),
    ("/api/v1/passkeys/register", {"credential": {"id": "x"}, "name": "\u200b"}, 400),
]


@pytest.mark.spec("SRV-2")
@pytest.mark.parametrize(("path", "body", "status"), MALFORMED)
def test_malformed_bodies_get_a_clear_4xx(
    falcon_api: FalconApi, path: str, body: dict[str, Any], status: int
) -> None:
    user = falcon_api.register()
    response = user.post(path, body)
    assert response.status == status, response.json
    assert response.json["code"]
    assert response.json["error"]


@pytest.mark.spec("SRV-2")
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/api-keys",
        "/api/v1/me/password",
        "/api/v1/me/email",
        "/api/v1/mfa/totp/confirm",
        "/api/v1/mfa/step-up",
        "/api/v1/mfa/disable",
        "/api/v1/mfa/backup-codes",
        "/api/v1/mfa/totp/setup",
        "/api/v1/passkeys/register/options",
        "/api/v1/passkeys/register",
        "/api/v1/me/google",
    ],
)
def test_non_json_bodies_are_400_or_415(falcon_api: FalconApi, path: str) -> None:
    user = falcon_api.register()
    as_text = falcon_api.post(path, token=user.access_token, raw=b"{}", content_type="text/plain")
    assert as_text.status == 415
    broken = falcon_api.post(
        path, token=user.access_token, raw=b"{not json", content_type="application/json"
    )
    assert broken.status == 400
    array = falcon_api.post(path, token=user.access_token, json_body=[1, 2])
    assert array.status == 400
