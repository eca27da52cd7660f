"""Licensing over HTTP: status, activation (valid, forged, other organization, expired),
grace, rate limit, permissions (LIC-1..LIC-3)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import falcon.testing
import pytest

from reference_server.app import create_app
from reference_server.mail import MemoryEmailSink
from reference_server.wiring import Server, build_server, run_now
from storno_security.audit import Outcome, SecurityEventType
from storno_security.clock import FrozenClock
from storno_security.license import LicenseIssuer, LicenseSigningKey
from tests.server.api import FalconApi
from tests.server.conftest import make_settings
from tests.server.data_support import add_member, relogin

ISSUER = "https://license.storno.example"


@pytest.fixture(scope="module")
def vendor_key() -> LicenseSigningKey:
    return LicenseSigningKey.generate()


@pytest.fixture
def licensed(
    tmp_path: Path, clock: FrozenClock, vendor_key: LicenseSigningKey
) -> Iterator[tuple[FalconApi, Server]]:
    pem = tmp_path / "vendor.pem"
    pem.write_bytes(vendor_key.public.public_pem())
    settings = make_settings(tmp_path / "data", license_public_key_file=pem)
    server = build_server(settings, clock=clock, email=MemoryEmailSink(), run_later=run_now)
    client = falcon.testing.TestClient(create_app(server=server))
    yield FalconApi(client, clock=clock), server
    server.close()


def _issue(
    clock: FrozenClock,
    organization_id: str,
    *,
    key: LicenseSigningKey,
    valid_for: timedelta = timedelta(days=365),
) -> str:
    issuer = LicenseIssuer(key, issuer=ISSUER, clock=clock)
    return issuer.issue(
        organization_id,
        org_name="ACME SRL",
        plan="business",
        features=["xml_sign", "efactura"],
        max_companies=5,
        max_users=20,
        valid_for=valid_for,
    ).token


def test_activate_a_valid_license(
    licensed: tuple[FalconApi, Server], clock: FrozenClock, vendor_key: LicenseSigningKey
) -> None:
    api, server = licensed
    owner = api.register()
    assert owner.get("/api/v1/license").json["state"] == "unlicensed"
    token = _issue(clock, owner.organization_id, key=vendor_key)

    response = owner.post("/api/v1/license", {"license": token})
    assert response.status == 200, response.json
    assert response.json["state"] == "valid"
    assert response.json["plan"] == "business"
    assert response.json["entitlements"]["features"] == ["efactura", "xml_sign"]
    assert token not in response.body.decode()

    status = owner.get("/api/v1/license").json
    assert status["state"] == "valid"
    assert status["entitlements"]["max_companies"] == 5
    checks = server.kit.stores.audit.query(
        organization_id=owner.organization_id, types=[SecurityEventType.LICENSE_CHECKED]
    )
    assert len(checks) == 2
    assert all(event.outcome is Outcome.SUCCESS for event in checks)
    assert all(event.details["plan"] == "business" for event in checks)


@pytest.mark.spec("LIC-3")
def test_grace_then_free_plan(
    licensed: tuple[FalconApi, Server], clock: FrozenClock, vendor_key: LicenseSigningKey
) -> None:
    api, _ = licensed
    owner = api.register()
    token = _issue(clock, owner.organization_id, key=vendor_key, valid_for=timedelta(days=30))
    assert owner.post("/api/v1/license", {"license": token}).status == 200

    clock.advance(timedelta(days=31))
    relogin(api, owner)
    grace = owner.get("/api/v1/license").json
    assert grace["state"] == "grace"
    assert grace["plan"] == "business"

    clock.advance(timedelta(days=14))
    relogin(api, owner)
    expired = owner.get("/api/v1/license").json
    assert expired["state"] == "expired"
    assert expired["plan"] == "free"
    assert expired["license"]["plan"] == "business"

    # An expired license is not installed again.
    again = owner.post("/api/v1/license", {"license": token})
    assert again.status == 422
    assert again.json["code"] == "license_expired"


@pytest.mark.spec("LIC-1")
@pytest.mark.parametrize("case", ["forged", "other_org", "garbage"])
def test_invalid_licenses_are_refused_and_not_stored(
    licensed: tuple[FalconApi, Server],
    clock: FrozenClock,
    vendor_key: LicenseSigningKey,
    case: str,
) -> None:
    api, server = licensed
    owner = api.register()
    good = _issue(clock, owner.organization_id, key=vendor_key)
    assert owner.post("/api/v1/license", {"license": good}).status == 200
    other = api.register()
    token = {
        "forged": _issue(clock, owner.organization_id, key=LicenseSigningKey.generate()),
        "other_org": _issue(clock, other.organization_id, key=vendor_key),
        "garbage": "eyJhbGciOiJub25lIn0.e30.",
    }[case]

    response = owner.post("/api/v1/license", {"license": token})
    assert response.status == 422
    assert response.json["code"] == "invalid_license"
    assert owner.get("/api/v1/license").json["state"] == "valid"  # the good one stays
    failures = server.kit.stores.audit.query(
        organization_id=owner.organization_id, types=[SecurityEventType.LICENSE_CHECKED]
    )
    assert any(event.outcome is Outcome.FAILURE for event in failures)


def test_a_license_of_another_org_cannot_be_installed_by_its_holder_elsewhere(
    licensed: tuple[FalconApi, Server], clock: FrozenClock, vendor_key: LicenseSigningKey
) -> None:
    api, _ = licensed
    owner = api.register()
    thief = api.register()
    token = _issue(clock, owner.organization_id, key=vendor_key)
    assert thief.post("/api/v1/license", {"license": token}).status == 422
    assert thief.get("/api/v1/license").json["state"] == "unlicensed"


@pytest.mark.parametrize("role", ["admin", "accountant", "viewer"])
def test_who_may_install_and_read(
    licensed: tuple[FalconApi, Server],
    clock: FrozenClock,
    vendor_key: LicenseSigningKey,
    role: str,
) -> None:
    api, server = licensed
    owner = api.register()
    member = api.register()
    add_member(server, member.user_id, owner.organization_id, role)
    org = owner.organization_id
    token = _issue(clock, org, key=vendor_key)
    install = member.post("/api/v1/license", {"license": token}, organization=org)
    assert install.status == (200 if role == "admin" else 403)
    assert member.get("/api/v1/license", organization=org).status == 200


@pytest.mark.spec("RL-1")
def test_activation_is_rate_limited(licensed: tuple[FalconApi, Server], clock: FrozenClock) -> None:
    api, _ = licensed
    owner = api.register()
    statuses = [
        owner.post("/api/v1/license", {"license": "not-a-license"}).status for _ in range(11)
    ]
    assert statuses[:10] == [422] * 10
    assert statuses[10] == 429


def test_without_a_vendor_key_activation_is_not_enabled(falcon_api: FalconApi) -> None:
    owner = falcon_api.register()
    response = owner.post("/api/v1/license", {"license": "x.y.z"})
    assert response.status == 404
    assert response.json["code"] == "not_enabled"
    assert owner.get("/api/v1/license").json["state"] == "unlicensed"


def test_malformed_activation_bodies(licensed: tuple[FalconApi, Server]) -> None:
    api, _ = licensed
    owner = api.register()
    assert owner.post("/api/v1/license", {}).status == 400
    assert owner.post("/api/v1/license", {"license": 5}).status == 400
    assert owner.post("/api/v1/license", {"license": "x" * 20_000}).status == 400
    assert api.get("/api/v1/license").status == 401
