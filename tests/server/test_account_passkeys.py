"""Passkeys over HTTP, in-process with a frozen clock: registration gated by re-authentication
(PK-1, ACC-6), rename and removal of one's own passkeys only, malformed ids."""

from __future__ import annotations

import pytest

from reference_server.wiring import Server
from storno_security.audit import SecurityEventType
from tests.oidc.provider import FakeGoogle
from tests.passkeys.authenticator import SoftAuthenticator, b64url
from tests.server.api import FalconApi
from tests.server.test_account_support import (
    ORIGIN,
    PASSWORD_PROOFS,
    enable_mfa,
    events,
    gapi,
    google,
    google_login,
    google_server,
    next_code,
    register_passkey,
    step_up,
)

__all__ = ["gapi", "google", "google_server"]  # fixtures

OPTIONS = "/api/v1/passkeys/register/options"
REGISTER = "/api/v1/passkeys/register"


def test_passkey_rename_and_delete(falcon_api: FalconApi, server: Server) -> None:
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
    assert events(server, SecurityEventType.PASSKEY_REGISTERED, user.user_id)
    assert events(server, SecurityEventType.PASSKEY_REMOVED, user.user_id)
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
    assert user.patch(f"/api/v1/passkeys/{passkey_id}", {"name": "x"}).status == 404


def test_registration_with_a_wrong_origin_is_refused(falcon_api: FalconApi) -> None:
    user = falcon_api.register()
    options = user.post(OPTIONS, {"current_password": user.password}).json["options"]
    credential = SoftAuthenticator().create(options, origin="https://evil.example")
    response = user.post(REGISTER, {"credential": credential, "name": "x"})
    assert response.status == 401
    assert response.json["code"] == "invalid_passkey"
    assert user.get("/api/v1/passkeys").json["passkeys"] == []


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


# --- registration is re-authenticated --------------------------------------------------------
# review finding (r-authz, HIGH): a passkey was registered with nothing but an access token.
# The tests failed before its fix, but the second, which guards what the fix must keep.


@pytest.mark.spec("MFA-6")
@pytest.mark.spec("ACC-6")
def test_registering_a_passkey_demands_a_step_up_when_mfa_is_on(
    falcon_api: FalconApi, server: Server
) -> None:
    victim = falcon_api.register()
    enrolled = enable_mfa(falcon_api, victim)
    # The access token alone, or with the password, no longer buys registration options.
    for proof in ({}, {"current_password": victim.password}):
        options = victim.post(OPTIONS, proof)
        assert options.status == 403, options.json
        assert options.json["code"] == "step_up_required"
        assert options.json["accepted"] == ["step_up_token"]
    denied = events(server, SecurityEventType.ACCESS_DENIED, victim.user_id)
    assert denied[-1].details == {"action": "passkey.register", "reason": "missing"}
    # A step-up for another act does not do.
    other = step_up(falcon_api, victim, "vault.read", code=next_code(falcon_api, enrolled.secret))
    refused = victim.post(OPTIONS, {"step_up_token": other})
    assert refused.status == 403, refused.json
    assert refused.json["code"] == "step_up_required"
    # With a fresh second factor for passkey.register, the owner adds a passkey.
    granted = step_up(
        falcon_api, victim, "passkey.register", code=next_code(falcon_api, enrolled.secret)
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


@pytest.mark.spec("ACC-6")
def test_passkey_registration_without_mfa_demands_the_current_password(
    falcon_api: FalconApi,
) -> None:
    user = falcon_api.register()
    missing = user.post(OPTIONS)
    assert missing.status == 403, missing.json
    assert missing.json["code"] == "reauthentication_required"
    assert missing.json["accepted"] == PASSWORD_PROOFS
    wrong = user.post(OPTIONS, {"current_password": "not the password"})
    assert wrong.status == 403, wrong.json
    assert wrong.json["code"] == "invalid_credentials"
    assert register_passkey(user, SoftAuthenticator())["name"] == "Laptop"


@pytest.mark.spec("ACC-6")
def test_a_passwordless_account_registers_a_passkey_only_just_after_a_login(
    gapi: FalconApi, google: FakeGoogle
) -> None:
    user = google_login(gapi, google)
    assert user.post(OPTIONS).status == 200
    assert gapi.clock is not None
    gapi.clock.advance(6 * 60)  # type: ignore[attr-defined]
    stale = user.post(OPTIONS)
    assert stale.status == 403, stale.json
    assert stale.json["code"] == "reauthentication_required"
    assert stale.json["accepted"] == ["step_up_token", "fresh_login"]
