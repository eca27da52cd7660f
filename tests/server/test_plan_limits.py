"""The free plan is enforced where docs/server-data.md says (LIC-3): on an installation that
verifies licenses, an organization without a usable license (none, one that no longer
verifies, or expired past its grace) has one company, one user and no licensed feature; a
license raises those limits. An installation without a vendor key verifies no licenses and
limits nothing."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import falcon.testing
import pytest

from reference_server.app import create_app
from reference_server.mail import MemoryEmailSink
from reference_server.wiring import Server, build_server, run_now
from storno_security.clock import FrozenClock
from storno_security.license import LicenseIssuer, LicenseSigningKey
from tests.server.api import FalconApi, User
from tests.server.conftest import make_settings

INVOICE = base64.b64encode(b"<Invoice><ID>F-1</ID></Invoice>").decode()


@pytest.fixture(scope="module")
def vendor_key() -> LicenseSigningKey:
    return LicenseSigningKey.generate()


@pytest.fixture
def licensing(
    tmp_path: Path, clock: FrozenClock, vendor_key: LicenseSigningKey
) -> Iterator[FalconApi]:
    pem = tmp_path / "vendor.pem"
    pem.write_bytes(vendor_key.public.public_pem())
    settings = make_settings(tmp_path / "data", license_public_key_file=pem)
    server: Server = build_server(settings, clock=clock, email=MemoryEmailSink(), run_later=run_now)
    yield FalconApi(falcon.testing.TestClient(create_app(server=server)), clock=clock)
    server.close()


def _install(owner: User, clock: FrozenClock, key: LicenseSigningKey, days: int = 365) -> None:
    token = (
        LicenseIssuer(key, issuer="https://license.storno.example", clock=clock)
        .issue(
            owner.organization_id,
            org_name="ACME SRL",
            plan="business",
            features=["xml_sign"],
            max_companies=3,
            max_users=2,
            valid_for=timedelta(days=days),
        )
        .token
    )
    assert owner.post("/api/v1/license", {"license": token}).status == 200


def _company(owner: User, name: str) -> tuple[int, str | None]:
    answer = owner.post("/api/v1/companies", {"name": name, "country": "RO"})
    return answer.status, (answer.json or {}).get("id") or answer.json.get("code")


def _invite(owner: User, n: int) -> tuple[int, str | None]:
    answer = owner.post("/api/v1/members", {"email": f"m{n}@example.eu", "role": "viewer"})
    return answer.status, (answer.json or {}).get("code")


def _sign(owner: User, company: str) -> tuple[int, str | None]:
    answer = owner.post("/api/v1/xml/sign", {"xml": INVOICE, "form": "enveloped"}, company=company)
    return answer.status, (answer.json or {}).get("code")


@pytest.mark.spec("LIC-3")
def test_an_unlicensed_organization_is_held_to_the_free_plan(licensing: FalconApi) -> None:
    owner = licensing.register()
    status, company = _company(owner, "One SRL")
    assert status == 201
    assert company is not None
    assert _company(owner, "Two SRL") == (403, "plan_limit")
    assert _invite(owner, 1) == (403, "plan_limit")  # the owner is the one user
    assert _sign(owner, company) == (403, "plan_limit")  # no licensed feature
    plan = owner.get("/api/v1/license").json
    assert (plan["state"], plan["plan"]) == ("unlicensed", "free")


@pytest.mark.spec("LIC-3")
def test_a_license_raises_the_limits_until_it_expires(
    licensing: FalconApi, clock: FrozenClock, vendor_key: LicenseSigningKey
) -> None:
    owner = licensing.register()
    _install(owner, clock, vendor_key, days=30)
    companies = [_company(owner, f"C{n} SRL") for n in range(4)]
    assert [status for status, _ in companies] == [201, 201, 201, 403]
    assert _invite(owner, 1)[0] == 202  # owner + one open invitation = 2 users
    assert _invite(owner, 2) == (403, "plan_limit")
    company = companies[0][1]
    assert company is not None
    assert _sign(owner, company)[0] == 200
    # expired past the grace (14 days): the free plan again
    clock.advance(timedelta(days=30 + 15))
    fresh = owner.api.post("/api/auth", {"email": owner.email, "password": owner.password})
    owner.access_token = fresh.json["access_token"]
    assert owner.get("/api/v1/license").json["state"] == "expired"
    assert _sign(owner, company) == (403, "plan_limit")


@pytest.mark.spec("LIC-3")
def test_without_a_vendor_key_no_plan_is_enforced(falcon_api: FalconApi) -> None:
    owner = falcon_api.register()
    statuses = [_company(owner, f"C{n} SRL")[0] for n in range(3)]
    assert statuses == [201, 201, 201]
    assert [_invite(owner, n)[0] for n in range(2)] == [202, 202]


@pytest.mark.spec("LIC-3")
def test_a_license_that_no_longer_verifies_gives_the_free_plan(
    tmp_path: Path, clock: FrozenClock, vendor_key: LicenseSigningKey
) -> None:
    pem = tmp_path / "vendor.pem"
    pem.write_bytes(vendor_key.public.public_pem())
    settings = make_settings(tmp_path / "data", license_public_key_file=pem)

    def serve() -> tuple[Server, FalconApi]:
        server = build_server(settings, clock=clock, email=MemoryEmailSink(), run_later=run_now)
        return server, FalconApi(falcon.testing.TestClient(create_app(server=server)), clock=clock)

    server, api = serve()
    try:
        owner = api.register()
        _install(owner, clock, vendor_key, days=30)
        first = server.data.licenses.token(owner.organization_id)
        _install(owner, clock, vendor_key, days=365)  # a renewal replaces the installed token
        expires = owner.get("/api/v1/license").json["expires_at"]
        assert expires.startswith((clock.now() + timedelta(days=365)).date().isoformat())
        assert [_company(owner, f"C{n} SRL")[0] for n in range(2)] == [201, 201]
        renewed = server.data.licenses.token(owner.organization_id)
    finally:
        server.close()
    assert renewed not in (None, first)
    # The vendor's key is replaced: the stored license is kept but no longer verifies.
    pem.write_bytes(LicenseSigningKey.generate().public.public_pem())
    server, owner.api = serve()
    try:
        plan = owner.get("/api/v1/license").json
        assert (plan["state"], plan["plan"]) == ("invalid", "free")
        assert _company(owner, "C2 SRL") == (403, "plan_limit")
        assert server.data.licenses.token(owner.organization_id) == renewed
    finally:
        server.close()
