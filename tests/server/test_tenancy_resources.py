"""Companies and invoices in detail: validation, pagination, soft deletion kept in the rows."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_server.data import tables
from reference_server.wiring import Server
from storno_security.clock import FrozenClock
from tests.server.api import FalconApi, User

INVOICE: dict[str, Any] = {
    "number": "INV-1",
    "customer": "Acme GmbH",
    "amount_minor": 1000,
    "currency": "EUR",
    "issue_date": "2026-03-01",
}


@pytest.fixture
def owner(falcon_api: FalconApi) -> User:
    return falcon_api.register()


@pytest.fixture
def company(owner: User) -> str:
    response = owner.post("/api/v1/companies", {"name": "Firma", "country": "DE"})
    assert response.status == 201
    company_id: str = response.json["id"]
    return company_id


def _bad(response: Any, field: str | None) -> None:
    assert response.status == 400, response.json
    assert response.json["code"] == "invalid_request"
    assert response.json.get("field") == field


def test_company_fields_are_validated(owner: User, company: str) -> None:
    base = {"name": "Firma", "country": "DE"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"country": "DE"}, "name"),
        ({**base, "name": ""}, "name"),
        ({**base, "name": "   "}, "name"),
        ({**base, "name": "a\nb"}, "name"),
        ({**base, "name": "x" * 201}, "name"),
        ({**base, "name": 7}, "name"),
        ({"name": "Firma"}, "country"),
        ({**base, "country": "de"}, "country"),
        ({**base, "country": "DEU"}, "country"),
        ({**base, "country": ["DE"]}, "country"),
        ({**base, "vat_id": "x"}, "vat_id"),
        ({**base, "vat_id": "DE" + "1" * 40}, "vat_id"),
        ({**base, "vat_id": 123456}, "vat_id"),
        ({**base, "owner": "me"}, "owner"),
    ]
    for body, field in cases:
        _bad(owner.post("/api/v1/companies", body), field)
    for body, field in cases[1:]:
        if field != "country" or "country" in body:
            _bad(owner.patch(f"/api/v1/companies/{company}", body), field)
    _bad(owner.patch(f"/api/v1/companies/{company}", {}), None)
    assert owner.post("/api/v1/companies", raw=b"[]", content_type="application/json").status == 400
    assert owner.post("/api/v1/companies", raw=b"name=x", content_type="text/plain").status == 415
    # Nothing was changed by the refused patches.
    item = owner.get(f"/api/v1/companies/{company}").json
    assert (item["name"], item["country"], item["vat_id"]) == ("Firma", "DE", None)


def test_company_update_and_vat_id_clearing(owner: User, company: str) -> None:
    path = f"/api/v1/companies/{company}"
    changed = owner.patch(path, {"vat_id": "DE123456789", "name": "Firma AG"})
    assert changed.status == 200
    assert (changed.json["vat_id"], changed.json["name"]) == ("DE123456789", "Firma AG")
    cleared = owner.patch(path, {"vat_id": None})
    assert (cleared.status, cleared.json["vat_id"], cleared.json["name"]) == (200, None, "Firma AG")


def test_invoice_fields_are_validated(owner: User, company: str) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({k: v for k, v in INVOICE.items() if k != "number"}, "number"),
        ({**INVOICE, "number": "n" * 65}, "number"),
        ({**INVOICE, "customer": ""}, "customer"),
        ({**INVOICE, "customer": "a\x00b"}, "customer"),
        ({**INVOICE, "amount_minor": 10**30}, "amount_minor"),
        ({**INVOICE, "amount_minor": -(10**30)}, "amount_minor"),
        ({**INVOICE, "amount_minor": 12.5}, "amount_minor"),
        ({**INVOICE, "amount_minor": 12.0}, "amount_minor"),
        ({**INVOICE, "amount_minor": "1200"}, "amount_minor"),
        ({**INVOICE, "amount_minor": True}, "amount_minor"),
        ({**INVOICE, "currency": "eur"}, "currency"),
        ({**INVOICE, "currency": "EURO"}, "currency"),
        ({**INVOICE, "currency": 978}, "currency"),
        ({**INVOICE, "issue_date": "2026-02-30"}, "issue_date"),
        ({**INVOICE, "issue_date": "20260301"}, "issue_date"),
        ({**INVOICE, "issue_date": "2026-03-01T00:00:00"}, "issue_date"),
        ({**INVOICE, "issue_date": "0001-01-01"}, "issue_date"),
        ({**INVOICE, "issue_date": 20260301}, "issue_date"),
        ({**INVOICE, "company_id": company}, "company_id"),
    ]
    for body, field in cases:
        _bad(owner.post("/api/v1/invoices", body, company=company), field)
    created = owner.post("/api/v1/invoices", INVOICE, company=company).json
    path = f"/api/v1/invoices/{created['id']}"
    for body, field in cases[1:]:
        _bad(owner.patch(path, {field: body.get(field)}, company=company), field)
    _bad(owner.patch(path, {}, company=company), None)
    # A huge JSON number: still a 400, never a 500.
    huge = b'{"number": "1", "customer": "c", "amount_minor": 1' + b"0" * 4000 + b"}"
    answer = owner.post(
        "/api/v1/invoices", raw=huge, content_type="application/json", company=company
    )
    assert answer.status in (400, 413)
    nan = b'{"number": "1", "customer": "c", "amount_minor": NaN}'
    answer = owner.post(
        "/api/v1/invoices", raw=nan, content_type="application/json", company=company
    )
    assert answer.status == 400
    assert owner.get(path, company=company).json["amount_minor"] == 1000
    # Extremes that are valid are stored exactly.
    edge = {**INVOICE, "amount_minor": -(10**15 - 1), "issue_date": "2024-02-29"}
    stored = owner.post("/api/v1/invoices", edge, company=company)
    assert stored.status == 201
    assert owner.get(f"/api/v1/invoices/{stored.json['id']}", company=company).json[
        "amount_minor"
    ] == -(10**15 - 1)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)


@pytest.mark.spec("SRV-2")
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(field=st.sampled_from(sorted(INVOICE)), value=_JSON)
def test_any_json_in_any_invoice_field_is_a_4xx_or_stored(
    owner: User, company: str, field: str, value: Any
) -> None:
    response = owner.post("/api/v1/invoices", {**INVOICE, field: value}, company=company)
    assert response.status in (201, 400), response.json
    if response.status == 201:
        assert response.json[field] == value


def test_keyset_pagination(owner: User, company: str, clock: FrozenClock) -> None:
    ids = []
    for n in range(7):
        if n % 3 == 0:
            clock.advance(1)  # some share a created_at: the id breaks the tie
        response = owner.post("/api/v1/invoices", {**INVOICE, "number": f"N{n}"}, company=company)
        ids.append(response.json["id"])
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = "?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = owner.get("/api/v1/invoices" + query, company=company).json
        seen += [i["id"] for i in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(set(seen))
    numbers = [owner.get(f"/api/v1/invoices/{i}", company=company).json["number"] for i in seen]
    # Creation order across seconds; within one second, by id.
    assert [int(n[1:]) // 3 for n in numbers] == sorted(int(n[1:]) // 3 for n in numbers)
    everything = owner.get("/api/v1/invoices", company=company).json
    assert [i["id"] for i in everything["items"]] == seen
    assert everything["next_cursor"] is None
    # An exact page leaves no dangling cursor.
    assert owner.get("/api/v1/invoices?limit=7", company=company).json["next_cursor"] is None


def test_bad_page_parameters(owner: User, company: str) -> None:
    for query in (
        "limit=0",
        "limit=101",
        "limit=abc",
        "limit=-1",
        "limit=1.5",
        "limit=" + "9" * 40,
        "limit=1&limit=2",  # a parameter given twice
    ):
        _bad(owner.get(f"/api/v1/invoices?{query}", company=company), "limit")
    forged = [
        "!!!",
        "x" * 300,
        base64.urlsafe_b64encode(b"yesterday|abc").decode().rstrip("="),
        base64.urlsafe_b64encode(b"2026-03-01T12:00:00|" + b"0" * 36).decode().rstrip("="),
        base64.urlsafe_b64encode(b"\xff\xfe").decode().rstrip("="),
        "a",
    ]
    for cursor in forged:
        _bad(owner.get(f"/api/v1/invoices?cursor={cursor}", company=company), "cursor")
        _bad(owner.get(f"/api/v1/companies?cursor={cursor}"), "cursor")


@pytest.mark.spec("RBAC-3")
def test_non_uuid_and_unknown_ids_are_404(owner: User, company: str) -> None:
    for raw in ("x", "1", "0" * 36, company.upper() + "0", "%00", "a" * 500):
        for path in (f"/api/v1/invoices/{raw}", f"/api/v1/companies/{raw}"):
            answer = owner.get(path, company=company)
            assert (answer.status, answer.json["code"]) == (404, "not_found"), path
        header = owner.get("/api/v1/invoices", company=raw)
        assert (header.status, header.json["code"]) == (404, "not_found"), raw
    # The canonical spelling is lower case; an upper-case X-Company names the same company.
    assert owner.get("/api/v1/invoices", company=company.upper()).status == 200


@pytest.mark.spec("RBAC-4")
def test_soft_deletion_keeps_the_rows(owner: User, company: str, server: Server) -> None:
    invoice = owner.post("/api/v1/invoices", INVOICE, company=company).json["id"]
    assert owner.delete(f"/api/v1/invoices/{invoice}", company=company).status == 204
    assert owner.delete(f"/api/v1/companies/{company}").status == 204
    with server.data.read() as conn:
        invoice_row = conn.execute(
            sa.select(tables.invoices.c.deleted_at).where(tables.invoices.c.id == invoice)
        ).one()
        company_row = conn.execute(
            sa.select(tables.companies.c.deleted_at).where(tables.companies.c.id == company)
        ).one()
    assert invoice_row.deleted_at == server.clock.now()
    assert company_row.deleted_at == server.clock.now()
    assert owner.patch(f"/api/v1/companies/{company}", {"name": "Back"}).status == 404


@pytest.mark.spec("KEY-4")
def test_api_key_scopes_on_invoices(owner: User, company: str, server: Server) -> None:
    api = owner.api
    keys = server.kit.api_keys
    read = keys.create(owner.user_id, owner.organization_id, name="reader", scope="read").key
    write = keys.create(owner.user_id, owner.organization_id, name="writer", scope="write").key
    assert api.get("/api/v1/invoices", api_key=read, company=company).status == 200
    assert api.post("/api/v1/invoices", INVOICE, api_key=read, company=company).status == 403
    created = api.post("/api/v1/invoices", INVOICE, api_key=write, company=company)
    assert created.status == 201
    assert created.json["created_by"] == owner.user_id
    # A write key is not an admin: no company management.
    assert api.delete(f"/api/v1/companies/{company}", api_key=write).status == 403


# Review r-authz, finding 12, tenancy part (LOW): a cursor time whose UTC value does not exist
# answered 500.
@pytest.mark.parametrize("stamp", [b"0001-01-01T00:00:00+01:00", b"9999-12-31T23:59:59-01:00"])
@pytest.mark.parametrize("path", ["/api/v1/companies", "/api/v1/invoices"])
def test_out_of_range_cursor_times_are_a_400(
    owner: User, company: str, stamp: bytes, path: str
) -> None:
    cursor = base64.urlsafe_b64encode(stamp + b"|00000000-0000-4000-8000-000000000000")
    response = owner.get(f"{path}?cursor={cursor.rstrip(b'=').decode()}", company=company)
    assert (response.status, response.json["code"]) == (400, "invalid_request"), response.json
