"""The account endpoints in detail, in-process with a frozen clock: KEY-5 refusals, TOTP
replay (MFA-2), step-up tokens single use and bound to one action (MFA-6), MFA disable and
password change revoking sessions (REF-4), malformed input answered 4xx, never 500."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from reference_server import users
from reference_server.services import Services
from storno_security.audit import SecurityEventType
from storno_security.errors import InvalidCiphertextError
from storno_security.mfa import (
    ACCOUNT_DELETE,
    API_KEY_CREATE,
    BACKUP_CODES_REGENERATE,
    MFA_DISABLE,
    VAULT_READ,
)
from tests.passkeys.authenticator import SoftAuthenticator, b64url
from tests.server.api import FalconApi, User
from tests.server.test_account_support import (
    ORIGIN,
    adopt_tokens,
    enable_mfa,
    login,
    register_passkey,
    step_up,
)

STEP = 30  # seconds per TOTP step


def _next_code(api: FalconApi, secret: str) -> str:
    """A code of a later step than any used so far (the clock moves one step on)."""
    assert api.clock is not None
    api.clock.advance(STEP)  # type: ignore[attr-defined]
    return api.totp_code(secret)


def _api_key(user: User, scope: str = "admin", **extra: Any) -> str:
    created = user.post("/api/v1/api-keys", {"name": "k", "scope": scope, **extra})
    assert created.status == 201, created.json
    key: str = created.json["key"]
    return key


def _events(services: Services, event_type: SecurityEventType, user_id: str) -> list[Any]:
    return services.audit.store.query(organization_id=None, types=(event_type,), actor_id=user_id)


# --- KEY-5: API keys cannot manage credentials -----------------------------------------------

CREDENTIAL_ENDPOINTS = [
    ("POST", "/api/v1/api-keys", {"name": "x", "scope": "read"}),
    ("GET", "/api/v1/api-keys", None),
    ("DELETE", "/api/v1/api-keys/abcdefghijkl", None),
    ("POST", "/api/v1/me/password", {"current_password": "x", "new_password": "y" * 20}),
    ("PATCH", "/api/v1/me", {"name": "Mallory"}),
    ("POST", "/api/v1/me/google", {"id_token": "x.y.z"}),
    ("GET", "/api/v1/mfa", None),
    ("POST", "/api/v1/mfa/totp/setup", None),
    ("POST", "/api/v1/mfa/totp/confirm", {"code": "123456"}),
    ("POST", "/api/v1/mfa/step-up", {"action": API_KEY_CREATE, "method": "totp", "code": "1"}),
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
    key = _api_key(user, "admin")
    response = falcon_api.request(method, path, json_body=body, api_key=key)
    assert response.status == 403, response.json
    assert response.json["code"] == "forbidden"


@pytest.mark.spec("KEY-5")
def test_a_key_cannot_be_given_a_credential_permission(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    for permission in ("apikey.manage", "password.change", "mfa.manage", "passkey.manage"):
        refused = user.post(
            "/api/v1/api-keys", {"name": "k", "scope": "admin", "permissions": [permission]}
        )
        assert refused.status == 403, (permission, refused.json)
    assert user.get("/api/v1/api-keys").json["api_keys"] == []


@pytest.mark.spec("KEY-4")
def test_a_key_with_an_explicit_list_gets_only_that(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    key = _api_key(user, "admin", permissions=["org.view", "invoice.view"])
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
    falcon_api: FalconApi, services: Services
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
    failed = _events(services, SecurityEventType.PASSWORD_CHANGED, user.user_id)
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
    falcon_api: FalconApi, services: Services
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
    (event,) = _events(services, SecurityEventType.PASSWORD_CHANGED, user.user_id)
    assert event.details["session_count"] == 2


# --- TOTP enrolment --------------------------------------------------------------------------


@pytest.mark.spec("MFA-1")
@pytest.mark.spec("VLT-2")
def test_totp_secret_is_sealed_pending_then_confirmed(
    falcon_api: FalconApi, services: Services
) -> None:
    user = falcon_api.register()
    setup = user.post("/api/v1/mfa/totp/setup", {"current_password": user.password})
    secret = setup.json["secret"]
    assert setup.json["otpauth_uri"].startswith("otpauth://totp/")
    assert len(secret) == 32  # 160 bits in base32 (MFA-1)
    row = users.get_user(services, user.user_id)
    assert row is not None
    assert row["totp_pending_sealed"] is not None
    assert secret not in row["totp_pending_sealed"]
    assert row["totp_secret_sealed"] is None
    assert row["mfa_enabled"] is False
    # The pending secret is bound to the pending column: it does not open as the confirmed one.
    with pytest.raises(InvalidCiphertextError):
        services.keys.vault.open(
            row["totp_pending_sealed"], associated_data=users.totp_associated_data(user.user_id)
        )
    assert user.get("/api/v1/mfa").json["pending_enrolment"] is True

    confirm = user.post("/api/v1/mfa/totp/confirm", {"code": falcon_api.totp_code(secret)})
    assert confirm.status == 200
    row = users.get_user(services, user.user_id)
    assert row is not None
    assert row["totp_pending_sealed"] is None
    assert row["mfa_enabled"] is True
    assert users.open_totp_secret(services, row) == secret
    (event,) = _events(services, SecurityEventType.MFA_ENABLED, user.user_id)
    assert event.details["backup_code_count"] == 10


def test_confirm_with_a_wrong_code_leaves_mfa_off(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    secret = user.post("/api/v1/mfa/totp/setup", {"current_password": user.password}).json["secret"]
    right = falcon_api.totp_code(secret)
    wrong = "000000" if right != "000000" else "111111"
    response = user.post("/api/v1/mfa/totp/confirm", {"code": wrong})
    assert response.status == 401
    assert response.json["code"] == "invalid_mfa_code"
    assert user.get("/api/v1/mfa").json["enabled"] is False
    assert login(falcon_api, user).json.get("mfa_required") is None
    # The pending enrolment survives a typo.
    assert user.post("/api/v1/mfa/totp/confirm", {"code": right}).status == 200


def test_confirm_without_setup_and_setup_when_enabled_are_409(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    response = user.post("/api/v1/mfa/totp/confirm", {"code": "123456"})
    assert response.status == 409
    assert response.json["code"] == "no_pending_enrolment"
    enable_mfa(falcon_api, user)
    again = user.post("/api/v1/mfa/totp/setup", {"current_password": user.password})
    assert again.status == 409
    assert again.json["code"] == "mfa_already_enabled"


@pytest.mark.spec("MFA-2")
def test_the_code_that_confirmed_enrolment_cannot_log_in(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    enrolled = enable_mfa(falcon_api, user)
    challenge = login(falcon_api, user).json
    same = falcon_api.post(
        "/api/auth/mfa/verify",
        {
            "mfa_token": challenge["mfa_token"],
            "method": "totp",
            "code": falcon_api.totp_code(enrolled.secret),
        },
    )
    assert same.status == 401
    assert same.json["code"] == "invalid_mfa_code"
    fresh = falcon_api.post(
        "/api/auth/mfa/verify",
        {
            "mfa_token": challenge["mfa_token"],
            "method": "totp",
            "code": _next_code(falcon_api, enrolled.secret),
        },
    )
    assert fresh.status == 200


@pytest.mark.spec("MFA-2")
def test_a_totp_code_used_for_step_up_is_not_accepted_again(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    enrolled = enable_mfa(falcon_api, user)
    code = _next_code(falcon_api, enrolled.secret)
    step_up(falcon_api, user, VAULT_READ, code=code)
    replay = user.post(
        "/api/v1/mfa/step-up", {"action": VAULT_READ, "method": "totp", "code": code}
    )
    assert replay.status == 401
    assert replay.json["code"] == "invalid_mfa_code"


# --- step-up ---------------------------------------------------------------------------------


@pytest.mark.spec("MFA-6")
def test_step_up_token_is_single_use(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    enrolled = enable_mfa(falcon_api, user)
    token = step_up(falcon_api, user, API_KEY_CREATE, code=_next_code(falcon_api, enrolled.secret))
    body = {"name": "k", "scope": "read", "step_up_token": token}
    assert user.post("/api/v1/api-keys", body).status == 201
    again = user.post("/api/v1/api-keys", body)
    assert again.status == 403
    assert again.json["code"] == "step_up_required"
    assert len(user.get("/api/v1/api-keys").json["api_keys"]) == 1


@pytest.mark.spec("MFA-6")
def test_step_up_token_is_bound_to_its_action(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    enrolled = enable_mfa(falcon_api, user)
    token = step_up(falcon_api, user, VAULT_READ, code=_next_code(falcon_api, enrolled.secret))
    disable = user.post("/api/v1/mfa/disable", {"step_up_token": token})
    assert disable.status == 403
    assert disable.json["code"] == "step_up_required"
    create = user.post("/api/v1/api-keys", {"name": "k", "scope": "read", "step_up_token": token})
    assert create.status == 403
    assert user.get("/api/v1/mfa").json["enabled"] is True


@pytest.mark.spec("MFA-6")
def test_step_up_token_is_bound_to_its_user(falcon_api: FalconApi) -> None:
    ana = falcon_api.register()
    bob = falcon_api.register()
    enrolled = enable_mfa(falcon_api, ana)
    enable_mfa(falcon_api, bob)
    token = step_up(falcon_api, ana, MFA_DISABLE, code=_next_code(falcon_api, enrolled.secret))
    assert bob.post("/api/v1/mfa/disable", {"step_up_token": token}).status == 403
    assert bob.get("/api/v1/mfa").json["enabled"] is True


@pytest.mark.spec("MFA-6")
def test_step_up_token_expires(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    enrolled = enable_mfa(falcon_api, user)
    token = step_up(falcon_api, user, MFA_DISABLE, code=_next_code(falcon_api, enrolled.secret))
    assert falcon_api.clock is not None
    falcon_api.clock.advance(121)  # type: ignore[attr-defined]
    assert user.post("/api/v1/mfa/disable", {"step_up_token": token}).status == 403


def test_api_key_creation_needs_a_step_up_when_mfa_is_on(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    enable_mfa(falcon_api, user)
    response = user.post("/api/v1/api-keys", {"name": "k", "scope": "read"})
    assert response.status == 403
    assert response.json["code"] == "step_up_required"
    garbage = user.post("/api/v1/api-keys", {"name": "k", "scope": "read", "step_up_token": "nope"})
    assert garbage.status == 403


def test_step_up_with_a_backup_code_uses_it_up(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    enrolled = enable_mfa(falcon_api, user)
    code = enrolled.backup_codes[3]
    step_up(falcon_api, user, ACCOUNT_DELETE, code=code, method="backup_code")
    assert user.get("/api/v1/mfa").json["backup_codes_left"] == 9
    again = user.post(
        "/api/v1/mfa/step-up", {"action": ACCOUNT_DELETE, "method": "backup_code", "code": code}
    )
    assert again.status == 401


def test_step_up_without_mfa_by_code_is_refused(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    response = user.post(
        "/api/v1/mfa/step-up", {"action": VAULT_READ, "method": "totp", "code": "123456"}
    )
    assert response.status == 401
    assert response.json["code"] == "invalid_mfa_code"


def test_step_up_with_a_passkey(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    authenticator = SoftAuthenticator()
    register_passkey(user, authenticator)
    options = user.post("/api/v1/mfa/step-up/passkey-options")
    assert options.status == 200
    assertion = authenticator.get(options.json["options"], origin=ORIGIN)
    response = user.post(
        "/api/v1/mfa/step-up",
        {"action": VAULT_READ, "method": "passkey", "credential": assertion},
    )
    assert response.status == 200, response.json
    assert response.json["method"] == "passkey"


def test_another_users_passkey_cannot_step_up(falcon_api: FalconApi) -> None:
    ana = falcon_api.register()
    bob = falcon_api.register()
    authenticator = SoftAuthenticator()
    register_passkey(bob, authenticator)
    options = falcon_api.post("/api/auth/passkey/login/options", {"email": bob.email})
    assertion = authenticator.get(options.json["options"], origin=ORIGIN)
    response = ana.post(
        "/api/v1/mfa/step-up", {"action": VAULT_READ, "method": "passkey", "credential": assertion}
    )
    assert response.status == 401
    assert response.json["code"] == "invalid_passkey"


def test_too_many_wrong_step_up_codes_lock_the_user(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    enrolled = enable_mfa(falcon_api, user)
    right = _next_code(falcon_api, enrolled.secret)
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(10):
        # Each try from its own address: the per-user lockout holds whatever the IP.
        response = falcon_api.with_ip().post(
            "/api/v1/mfa/step-up",
            {"action": VAULT_READ, "method": "totp", "code": wrong},
            token=user.access_token,
        )
        assert response.status == 401
    locked = falcon_api.with_ip().post(
        "/api/v1/mfa/step-up",
        {"action": VAULT_READ, "method": "totp", "code": right},
        token=user.access_token,
    )
    assert locked.status == 429
    assert locked.json["code"] == "mfa_locked"
    assert locked.header("Retry-After")


# --- backup codes and MFA disable ------------------------------------------------------------


@pytest.mark.spec("MFA-3")
def test_regenerating_backup_codes_replaces_the_whole_set(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    enrolled = enable_mfa(falcon_api, user)
    assert user.post("/api/v1/mfa/backup-codes", {}).status == 403
    token = step_up(
        falcon_api, user, BACKUP_CODES_REGENERATE, code=_next_code(falcon_api, enrolled.secret)
    )
    fresh = user.post("/api/v1/mfa/backup-codes", {"step_up_token": token})
    assert fresh.status == 200
    new_codes = fresh.json["backup_codes"]
    assert len(new_codes) == 10
    assert not set(new_codes) & set(enrolled.backup_codes)
    old = user.post(
        "/api/v1/mfa/step-up",
        {"action": VAULT_READ, "method": "backup_code", "code": enrolled.backup_codes[0]},
    )
    assert old.status == 401
    step_up(falcon_api, user, VAULT_READ, code=new_codes[0], method="backup_code")


@pytest.mark.spec("MFA-6")
@pytest.mark.spec("REF-4")
def test_mfa_disable_needs_a_step_up_then_kills_every_session(
    falcon_api: FalconApi, services: Services
) -> None:
    user = falcon_api.register()
    enrolled = enable_mfa(falcon_api, user)
    for body in ({}, {"step_up_token": "garbage"}):
        refused = user.post("/api/v1/mfa/disable", body)
        assert refused.status == 403
        assert refused.json["code"] == "step_up_required"
    assert user.get("/api/v1/mfa").json["enabled"] is True

    old_access, old_refresh = user.access_token, user.refresh_token
    token = step_up(falcon_api, user, MFA_DISABLE, code=_next_code(falcon_api, enrolled.secret))
    disabled = user.post("/api/v1/mfa/disable", {"step_up_token": token})
    assert disabled.status == 200, disabled.json
    assert falcon_api.get("/api/v1/me", token=old_access).status == 401
    assert falcon_api.post("/api/auth/refresh", {"refresh_token": old_refresh}).status == 401
    adopt_tokens(user, disabled.json)
    status = user.get("/api/v1/mfa").json
    assert status == {
        "enabled": False,
        "methods": [],
        "backup_codes_left": 0,
        "pending_enrolment": False,
        "has_passkeys": False,
    }
    row = users.get_user(services, user.user_id)
    assert row is not None
    assert row["totp_secret_sealed"] is None
    assert services.backup_codes.remaining(user.user_id) == 0
    assert "access_token" in login(falcon_api, user).json  # no challenge any more
    assert _events(services, SecurityEventType.MFA_DISABLED, user.user_id)
    assert user.post("/api/v1/mfa/disable", {"step_up_token": token}).status == 409


# --- passkeys --------------------------------------------------------------------------------


def test_passkey_rename_and_delete(falcon_api: FalconApi, services: Services) -> None:
    user = falcon_api.register()
    authenticator = SoftAuthenticator()
    created = register_passkey(user, authenticator, name="Laptop")
    passkey_id = created["id"]
    renamed = user.patch(f"/api/v1/passkeys/{passkey_id}", {"name": "Phone"})
    assert renamed.status == 200
    assert renamed.json["name"] == "Phone"
    assert user.get("/api/v1/passkeys").json["passkeys"][0]["name"] == "Phone"
    assert user.delete(f"/api/v1/passkeys/{passkey_id}").status == 204
    assert user.delete(f"/api/v1/passkeys/{passkey_id}").status == 404
    assert user.get("/api/v1/passkeys").json["passkeys"] == []
    assert _events(services, SecurityEventType.PASSKEY_REGISTERED, user.user_id)
    assert _events(services, SecurityEventType.PASSKEY_REMOVED, user.user_id)
    # A removed passkey no longer logs in.
    options = falcon_api.post("/api/auth/passkey/login/options", {})
    assertion = authenticator.get(
        options.json["options"], origin=ORIGIN, credential_id=next(iter(authenticator.keys))
    )
    assert falcon_api.post("/api/auth/passkey/login", {"credential": assertion}).status == 401


def test_another_users_passkey_is_not_found(falcon_api: FalconApi) -> None:
    ana = falcon_api.register()
    bob = falcon_api.register()
    created = register_passkey(bob, SoftAuthenticator())
    assert ana.patch(f"/api/v1/passkeys/{created['id']}", {"name": "Mine"}).status == 404
    assert ana.delete(f"/api/v1/passkeys/{created['id']}").status == 404
    assert len(bob.get("/api/v1/passkeys").json["passkeys"]) == 1


@pytest.mark.parametrize("passkey_id", ["not base64!", "A", "=" * 4, b64url(b"\x00" * 16)])
def test_malformed_or_unknown_passkey_ids_are_404(falcon_api: FalconApi, passkey_id: str) -> None:
    user = falcon_api.register()
    assert user.delete(f"/api/v1/passkeys/{passkey_id}").status == 404


def test_registration_with_a_wrong_origin_is_refused(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    options = user.post(
        "/api/v1/passkeys/register/options", {"current_password": user.password}
    ).json["options"]
    credential = SoftAuthenticator().create(options, origin="https://evil.example")
    response = user.post("/api/v1/passkeys/register", {"credential": credential, "name": "x"})
    assert response.status == 401
    assert response.json["code"] == "invalid_passkey"
    assert user.get("/api/v1/passkeys").json["passkeys"] == []


# --- API keys --------------------------------------------------------------------------------


def test_another_users_key_cannot_be_revoked(falcon_api: FalconApi) -> None:
    ana = falcon_api.register()
    bob = falcon_api.register()
    key = _api_key(bob, "read")
    key_id = bob.get("/api/v1/api-keys").json["api_keys"][0]["key_id"]
    assert ana.delete(f"/api/v1/api-keys/{key_id}").status == 404
    assert falcon_api.get("/api/v1/me", api_key=key).status == 200
    assert ana.delete("/api/v1/api-keys/" + "x" * 300).status == 404


def test_key_expiry_is_honoured(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    now = falcon_api.now()
    past = (now - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    refused = user.post("/api/v1/api-keys", {"name": "short", "scope": "read", "expires_at": past})
    assert refused.status == 422
    assert refused.json["code"] == "invalid_expiry"
    expires = (now + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    created = user.post(
        "/api/v1/api-keys", {"name": "short", "scope": "read", "expires_at": expires}
    )
    assert created.status == 201, created.json
    key = created.json["key"]
    assert falcon_api.get("/api/v1/me", api_key=key).status == 200
    assert falcon_api.clock is not None
    falcon_api.clock.advance(3601)  # type: ignore[attr-defined]
    assert falcon_api.get("/api/v1/me", api_key=key).status == 401


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
    ("/api/v1/api-keys", {"name": "k", "scope": "read", "step_up_token": "t"}, 400),
    ("/api/v1/api-keys", {"name": "k", "scope": "read", "step_up_token": 7}, 400),
    ("/api/v1/me/password", {"current_password": "x"}, 400),
    ("/api/v1/me/password", {"current_password": 1, "new_password": "y"}, 400),
    ("/api/v1/mfa/totp/confirm", {}, 400),
    ("/api/v1/mfa/totp/confirm", {"code": 123456}, 400),
    ("/api/v1/mfa/step-up", {"action": "root", "method": "totp", "code": "1"}, 400),
    ("/api/v1/mfa/step-up", {"action": VAULT_READ, "method": "sms", "code": "1"}, 400),
    ("/api/v1/mfa/step-up", {"action": VAULT_READ, "method": "passkey", "credential": "x"}, 400),
    ("/api/v1/mfa/step-up", {"action": VAULT_READ, "method": "passkey", "credential": {}}, 401),
    ("/api/v1/mfa/step-up", {"action": VAULT_READ, "method": "totp", "code": "x" * 65}, 400),
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


def test_malformed_patch_bodies(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    created = register_passkey(user, SoftAuthenticator())
    response = falcon_api.patch(
        f"/api/v1/passkeys/{created['id']}",
        token=user.access_token,
        raw=b"name=x",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status == 415
    assert user.patch(f"/api/v1/passkeys/{created['id']}", {"name": 3}).status == 400
