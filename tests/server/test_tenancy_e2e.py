"""Companies, members and invoices end to end, over Falcon and two real gunicorn servers.

RBAC-1..RBAC-4 through HTTP: roles decide who may write, a company or invoice of another
organization answers 404 like a missing one, and soft-deleted records answer 404 afterwards.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.api import Api, User
from tests.server.tenancy_support import accept, invite

INVOICE = {
    "number": "2026-0001",
    "customer": "Acme SRL",
    "amount_minor": 123_45,
    "currency": "EUR",
    "issue_date": "2026-03-01",
}


def _company(owner: User, name: str = "Storno SRL") -> str:
    response = owner.post(
        "/api/v1/companies", {"name": name, "country": "RO", "vat_id": "RO12345678"}
    )
    assert response.status == 201, response.json
    company_id: str = response.json["id"]
    return company_id


def _add(owner: User, member: User, role: str) -> dict[str, Any]:
    """Invite (the address is normalised, ACC-1), then accept as the member."""
    invite(owner, member.email.upper(), role)
    # Until it accepts, the invited user is not a member: the organization stays closed.
    closed = member.get("/api/v1/companies", organization=owner.organization_id)
    assert (closed.status, closed.json["code"]) == (404, "not_found")
    return accept(member, owner.organization_id)


@pytest.mark.spec("RBAC-1")
@pytest.mark.spec("RBAC-2")
def test_company_and_invoice_crud_across_roles(api: Api) -> None:
    owner = api.register()
    # The invited accounts confirm their addresses: only then are invitations theirs (RBAC-6).
    accountant, viewer = api.register(confirm=True), api.register(confirm=True)
    company_id = _company(owner)
    assert _add(owner, accountant, "accountant")["role"] == "accountant"
    assert _add(owner, viewer, "viewer")["user_id"] == viewer.user_id

    members = owner.get("/api/v1/members")
    assert members.status == 200
    roles = {m["user_id"]: m["role"] for m in members.json["items"]}
    assert roles == {
        owner.user_id: "owner",
        accountant.user_id: "accountant",
        viewer.user_id: "viewer",
    }

    # The added members act in the owner's organization by naming it (RBAC-3).
    org = {"organization": owner.organization_id, "company": company_id}
    created = accountant.post("/api/v1/invoices", INVOICE, **org)
    assert created.status == 201, created.json
    invoice = created.json
    assert invoice["company_id"] == company_id
    assert invoice["created_by"] == accountant.user_id
    assert invoice["amount_minor"] == 123_45

    updated = accountant.patch(
        f"/api/v1/invoices/{invoice['id']}", {"amount_minor": 200_00, "customer": "Acme SA"}, **org
    )
    assert updated.status == 200, updated.json
    assert (updated.json["amount_minor"], updated.json["customer"]) == (200_00, "Acme SA")

    listed = viewer.get("/api/v1/invoices", **org)
    assert listed.status == 200
    assert [i["id"] for i in listed.json["items"]] == [invoice["id"]]
    read = viewer.get(f"/api/v1/invoices/{invoice['id']}", **org)
    assert read.status == 200
    assert read.json["amount_minor"] == 200_00

    # Viewer: read-only (RBAC-2).
    refused = viewer.post("/api/v1/invoices", INVOICE, **org)
    assert (refused.status, refused.json["code"]) == (403, "forbidden")
    assert viewer.delete(f"/api/v1/invoices/{invoice['id']}", **org).status == 403
    assert viewer.post("/api/v1/companies", {"name": "X", "country": "RO"}, **org).status == 403
    # Accountant: financial documents, not the organization.
    assert accountant.delete(f"/api/v1/companies/{company_id}", **org).status == 403
    added = accountant.post("/api/v1/members", {"email": viewer.email, "role": "viewer"}, **org)
    assert added.status == 403
    assert viewer.get(f"/api/v1/invoices/{invoice['id']}", **org).json["customer"] == "Acme SA"

    # A company-scoped endpoint without X-Company is a 400.
    missing = accountant.get("/api/v1/invoices", organization=owner.organization_id)
    assert (missing.status, missing.json["code"]) == (400, "company_required")


@pytest.mark.spec("RBAC-3")
@pytest.mark.spec("RBAC-4")
def test_cross_organization_probe_and_soft_delete(api: Api) -> None:
    owner, intruder = api.register(), api.register()
    company_id = _company(owner)
    invoice_id = owner.post("/api/v1/invoices", INVOICE, company=company_id).json["id"]
    their_company = _company(intruder, "Other SRL")
    their_invoice = intruder.post("/api/v1/invoices", INVOICE, company=their_company)
    assert their_invoice.status == 201

    unknown = "00000000-0000-4000-8000-000000000000"
    # Another organization's company: the same 404 as an unknown or malformed id (RBAC-3).
    answers = [
        intruder.get(f"/api/v1/companies/{company_id}"),
        intruder.get(f"/api/v1/companies/{unknown}"),
        intruder.get("/api/v1/companies/not-a-uuid"),
        intruder.get("/api/v1/invoices", company=company_id),
        intruder.get(f"/api/v1/invoices/{invoice_id}", company=company_id),
        intruder.patch(f"/api/v1/companies/{company_id}", {"name": "Mine"}),
        intruder.delete(f"/api/v1/companies/{company_id}"),
        # Another organization's invoice, asked through one's own company.
        intruder.get(f"/api/v1/invoices/{invoice_id}", company=their_company),
        intruder.delete(f"/api/v1/invoices/{invoice_id}", company=their_company),
        # Naming the other organization does not help: the intruder is not a member.
        intruder.get("/api/v1/invoices", organization=owner.organization_id, company=company_id),
    ]
    for answer in answers:
        assert (answer.status, answer.json["code"]) == (404, "not_found"), answer.json
    assert owner.get(f"/api/v1/invoices/{invoice_id}", company=company_id).status == 200
    their_list = owner.get("/api/v1/companies").json["items"]
    assert [c["id"] for c in their_list] == [company_id]

    # Soft-deleted invoice: 404 on every path, gone from the list (RBAC-4).
    assert owner.delete(f"/api/v1/invoices/{invoice_id}", company=company_id).status == 204
    for answer in (
        owner.get(f"/api/v1/invoices/{invoice_id}", company=company_id),
        owner.patch(f"/api/v1/invoices/{invoice_id}", {"number": "X"}, company=company_id),
        owner.delete(f"/api/v1/invoices/{invoice_id}", company=company_id),
    ):
        assert answer.status == 404
    assert owner.get("/api/v1/invoices", company=company_id).json["items"] == []

    # Soft-deleted company: 404 by id and in X-Company, gone from the list.
    kept = owner.post("/api/v1/invoices", {**INVOICE, "number": "2"}, company=company_id)
    assert owner.delete(f"/api/v1/companies/{company_id}").status == 204
    for answer in (
        owner.get(f"/api/v1/companies/{company_id}"),
        owner.delete(f"/api/v1/companies/{company_id}"),
        owner.get("/api/v1/invoices", company=company_id),
        owner.get(f"/api/v1/invoices/{kept.json['id']}", company=company_id),
        owner.post("/api/v1/invoices", INVOICE, company=company_id),
    ):
        assert (answer.status, answer.json["code"]) == (404, "not_found")
    assert owner.get("/api/v1/companies").json["items"] == []
