"""Helpers for the secure-data and GDPR server tests: companies (over HTTP for the end-to-end
tests, straight into the database for the in-process ones), MFA and step-up set-up, a small
UBL-like invoice, and base64."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from reference_server import db
from reference_server.services import Services
from tests.server.api import Api, User

INVOICE = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2" '
    b'xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">'
    b"<cbc:ID>INV-2026-0001</cbc:ID><cbc:IssueDate>2026-03-01</cbc:IssueDate>"
    b"<cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>"
    b"<cbc:Note>Storno test</cbc:Note></Invoice>"
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def insert_company(database: db.Database, organization_id: str, name: str = "ACME SRL") -> str:
    company_id = db.new_id()
    with database.transaction() as conn:
        conn.execute(
            db.companies.insert().values(
                id=company_id,
                organization_id=organization_id,
                name=name,
                country="RO",
                created_at=datetime.now(UTC),
            )
        )
    return company_id


def create_company(user: User, name: str = "ACME SRL") -> str:
    """A company made over HTTP by its organization's Owner (the end-to-end way)."""
    response = user.post("/api/v1/companies", {"name": name, "country": "RO"})
    assert response.status == 201, response.json
    company_id: str = response.json["id"]
    return company_id


def catch_up_with_wall_clock(api: Api) -> None:
    """The server's XML certificate is made with the wall clock when the key files are first
    written; the in-process app's frozen clock starts earlier (2026-03-01), when the
    certificate would not be valid yet. Move the frozen clock to now."""
    clock = api.clock
    if clock is None:
        return
    behind = (datetime.now(UTC) - clock.now()).total_seconds()
    if behind > 0:
        clock.advance(behind)  # type: ignore[attr-defined]


def enable_mfa(services: Services, user_id: str) -> str:
    """Turn MFA on for a user directly (as the MFA endpoints would); returns the TOTP secret."""
    from reference_server import users

    enrolment = services.totp.begin_enrolment(account_name="user", issuer="storno")
    secret = enrolment.secret
    with services.db.transaction() as conn:
        conn.execute(
            db.users.update()
            .where(db.users.c.id == user_id)
            .values(
                totp_secret_sealed=users.seal_totp_secret(services, user_id, secret),
                mfa_enabled=True,
            )
        )
    return secret


def step_up_token(services: Services, api: Api, user_id: str, secret: str, action: str) -> str:
    """A step-up token for ``action`` from a TOTP code checked now (MFA-6)."""
    factor = services.second_factor.verify(
        user_id, method="totp", code=api.totp_code(secret), totp_secret=secret
    )
    return services.step_up.issue(factor, action=action).token


def add_member(services: Services, user_id: str, organization_id: str, role: str) -> None:
    with services.db.transaction() as conn:
        conn.execute(
            db.memberships.insert().values(
                user_id=user_id,
                organization_id=organization_id,
                role=role,
                permissions=None,
                is_default=False,
                created_at=services.clock.now(),
            )
        )


def relogin(api: Api, user: User) -> None:
    """A fresh access token for ``user`` (after the frozen clock moved past the old one)."""
    response = api.post("/api/auth", {"email": user.email, "password": user.password})
    assert response.status == 200, response.json
    user.access_token = response.json["access_token"]
