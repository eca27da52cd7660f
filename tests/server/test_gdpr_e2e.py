"""End to end over every backend: GDPR export, then account deletion (ACC-4)."""

from __future__ import annotations

import pytest

from tests.server.api import Api


@pytest.mark.spec("ACC-4")
def test_export_then_delete(api: Api) -> None:
    user = api.register()
    key = user.post(
        "/api/v1/api-keys", {"name": "ci", "scope": "read", "current_password": user.password}
    )

    export = user.get("/api/v1/me/export")
    assert export.status == 200, export.json
    data = export.json
    assert data["account"]["email"] == user.email
    assert data["account"]["id"] == user.user_id
    assert [m["organization_id"] for m in data["memberships"]] == [user.organization_id]
    assert data["organizations_owned"][0]["id"] == user.organization_id
    assert any(event["type"] == "account.registered" for event in data["audit_events"])
    raw = export.body.decode()
    # No secret, hash or token of any kind in the export.
    for forbidden in ("$2b$", "password_hash", "totp_secret", user.password, user.refresh_token):
        assert forbidden not in raw
    assert user.access_token not in raw
    if key.status == 201 and "key" in key.json:
        assert key.json["key"] not in raw

    wrong = user.delete("/api/v1/me", {"current_password": "not the password"})
    assert (wrong.status, wrong.json["code"]) == (403, "invalid_credentials")

    deleted = user.delete("/api/v1/me", {"current_password": user.password})
    assert deleted.status == 202, deleted.json
    assert deleted.json["status"] == "deleted"

    login = api.post("/api/auth", {"email": user.email, "password": user.password})
    assert login.status == 401
    assert login.json["code"] == "invalid_credentials"
    assert user.get("/api/v1/me/export").status == 401
    refresh = api.post("/api/auth/refresh", {"refresh_token": user.refresh_token})
    assert refresh.status == 401

    # The address is free again: the account's personal data is gone.
    again = api.register(email=user.email)
    assert again.user_id != user.user_id
