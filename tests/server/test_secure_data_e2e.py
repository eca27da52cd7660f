"""End to end over every backend: vault store/read, license status, XML sign then verify, and
the organization's audit log."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.server.api import Api, User
from tests.server.data_support import INVOICE, b64, catch_up_with_wall_clock, company_of, unb64

__all__ = ["company_of"]  # a fixture


@pytest.mark.spec("VLT-1")
def test_vault_store_list_reveal_replace_delete(
    api: Api, company_of: Callable[[User], str]
) -> None:
    owner = api.register()
    company = company_of(owner)
    proof = {"current_password": owner.password}
    secret = {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG"}

    created = owner.post(
        "/api/v1/storage-credentials",
        {"provider": "s3", "name": "Archive bucket", "secret": secret, **proof},
        company=company,
    )
    assert created.status == 201, created.json
    credential_id = created.json["id"]
    assert "secret" not in created.json

    listing = owner.get("/api/v1/storage-credentials", company=company)
    assert listing.status == 200
    assert [item["id"] for item in listing.json["items"]] == [credential_id]
    assert b"wJalrXUtnFEMI" not in listing.body
    assert b"AKIAEXAMPLE" not in listing.body

    revealed = owner.post(
        f"/api/v1/storage-credentials/{credential_id}/secret", proof, company=company
    )
    assert revealed.status == 200, revealed.json
    assert revealed.json["secret"] == secret

    replaced = owner.put(
        f"/api/v1/storage-credentials/{credential_id}",
        {"secret": "new-token", **proof},
        company=company,
    )
    assert replaced.status == 200, replaced.json
    again = owner.post(
        f"/api/v1/storage-credentials/{credential_id}/secret", proof, company=company
    )
    assert again.json["secret"] == "new-token"

    assert (
        owner.delete(f"/api/v1/storage-credentials/{credential_id}", company=company).status == 204
    )
    gone = owner.post(f"/api/v1/storage-credentials/{credential_id}/secret", proof, company=company)
    assert gone.status == 404
    assert owner.get("/api/v1/storage-credentials", company=company).json["items"] == []

    # Another organization probing the id gets 404, as for a missing row (RBAC-3).
    stranger = api.register()
    own_company = company_of(stranger)
    probe = stranger.post(
        f"/api/v1/storage-credentials/{credential_id}/secret",
        {"current_password": stranger.password},
        company=own_company,
    )
    assert probe.status == 404
    assert stranger.get("/api/v1/storage-credentials", company=company).status == 404


def test_license_status_unlicensed_without_a_license(api: Api) -> None:
    owner = api.register()
    response = owner.get("/api/v1/license")
    assert response.status == 200, response.json
    assert response.json["state"] == "unlicensed"
    assert response.json["plan"] == "free"
    assert response.json["license"] is None


def test_xml_sign_then_verify(api: Api, company_of: Callable[[User], str]) -> None:
    catch_up_with_wall_clock(api)
    owner = api.register()
    company = company_of(owner)
    for form in ("enveloped", "xades"):
        signed = owner.post(
            "/api/v1/xml/sign", {"xml": b64(INVOICE), "form": form}, company=company
        )
        assert signed.status == 200, signed.json
        document = unb64(signed.json["xml"])
        assert b"SignatureValue" in document
        verified = owner.post(
            "/api/v1/xml/verify", {"xml": signed.json["xml"], "form": form}, company=company
        )
        assert verified.status == 200, verified.json
        assert verified.json["valid"] is True
        assert verified.json["signer"]["subject"]

        tampered = document.replace(b"INV-2026-0001", b"INV-2026-9999")
        refused = owner.post(
            "/api/v1/xml/verify", {"xml": b64(tampered), "form": form}, company=company
        )
        assert refused.status == 422
        assert refused.json["code"] == "invalid_signature"


def test_audit_log_shows_the_organizations_logins(api: Api) -> None:
    owner = api.register()
    login = api.post("/api/auth", {"email": owner.email, "password": owner.password})
    assert login.status == 200, login.json
    response = owner.get("/api/v1/audit-events?type=login.succeeded")
    assert response.status == 200, response.json
    events = response.json["events"]
    assert events, "the login is in the organization's audit log"
    assert all(event["organization_id"] == owner.organization_id for event in events)
    assert {event["actor_id"] for event in events} == {owner.user_id}

    export = owner.get("/api/v1/audit-events/export")
    assert export.status == 200
    assert export.header("content-type") or "".startswith("application/x-ndjson")
    lines = [json.loads(line) for line in export.body.decode().splitlines()]
    assert any(line["type"] == "login.succeeded" for line in lines)
    assert all(line["organization_id"] == owner.organization_id for line in lines)

    other = api.register()
    theirs = other.get("/api/v1/audit-events").json["events"]
    assert owner.user_id not in {event["actor_id"] for event in theirs}
