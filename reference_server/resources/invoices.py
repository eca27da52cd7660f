"""Invoices: the company-scoped resource (RBAC-3, RBAC-4). ``X-Company`` is resolved by the kit
(``ctx.authorize(..., company=True)``: missing 400, another organization's or deleted 404); the
data module reads and writes only live invoices of that company.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any, NoReturn

from reference_server.schemas import (
    PAGE_PARAMETERS,
    page_json,
    page_of,
    page_request,
)
from reference_server.wiring import Server
from storno_security.integrations.falcon.errors import ApiError
from storno_security.integrations.falcon.openapi import obj
from storno_security.integrations.falcon.routing import Body, Ctx, Routes, bad_request, iso
from storno_security.integrations.falcon.schemas import (
    END,
    NULLABLE_STRING,
    TIME,
    line,
)
from storno_security.rbac import Permission, canonical_uuid

__all__ = ["MAX_AMOUNT_MINOR", "routes"]

routes = Routes()

#: The largest amount an invoice may carry, in minor units (far inside a signed 64-bit column).
MAX_AMOUNT_MINOR = 10**15 - 1

_FIELDS: dict[str, Any] = {
    "number": line(64),
    "customer": line(200),
    "amount_minor": {
        "type": "integer",
        "minimum": -MAX_AMOUNT_MINOR,
        "maximum": MAX_AMOUNT_MINOR,
        "description": "Minor units (cents); never a float, a string or a boolean.",
    },
    "currency": {"type": "string", "pattern": f"^[A-Z]{{3}}{END}", "description": "ISO 4217"},
    "issue_date": {
        "type": "string",
        "format": "date",
        "pattern": f"^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}{END}",
        "description": "YYYY-MM-DD, a real calendar date, 1900 or later.",
    },
}
_INVOICE = obj(
    {
        "id": {"type": "string"},
        "company_id": {"type": "string"},
        "number": {"type": "string"},
        "customer": {"type": "string"},
        "amount_minor": {"type": "integer"},
        "currency": {"type": "string"},
        "issue_date": {"type": "string", "format": "date"},
        "created_by": NULLABLE_STRING,
        "created_at": TIME,
        "updated_at": TIME,
    },
    required=(
        "id",
        "company_id",
        "number",
        "customer",
        "amount_minor",
        "currency",
        "issue_date",
        "created_at",
        "updated_at",
    ),
)


def invoice_json(row: Mapping[str, Any]) -> dict[str, Any]:
    issued: date = row["issue_date"]
    return {
        "id": row["id"],
        "company_id": row["company_id"],
        "number": row["number"],
        "customer": row["customer"],
        "amount_minor": int(row["amount_minor"]),
        "currency": row["currency"],
        "issue_date": issued.isoformat(),
        "created_by": row["created_by"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


def _values(body: Body) -> dict[str, Any]:
    """The columns of a checked body; what JSON Schema cannot say is checked here (an integral
    float is an "integer" to it, a well-formed date need not exist)."""
    values = dict(body)
    if isinstance(values.get("amount_minor"), float):
        bad_request("'amount_minor' must be an integer.", field="amount_minor")
    if "issue_date" in values:
        try:
            values["issue_date"] = date.fromisoformat(values["issue_date"])
        except ValueError:
            bad_request("'issue_date' is not a valid calendar date.", field="issue_date")
        if values["issue_date"].year < 1900:
            bad_request("'issue_date' must be in 1900 or later.", field="issue_date")
    return values


def _not_found() -> NoReturn:
    raise ApiError(404, "not_found", "Not found.")


def _found(row: Mapping[str, Any] | None) -> dict[str, Any]:
    if row is None:  # another company's, deleted, unknown or malformed: one 404
        _not_found()
    return invoice_json(row)


def _id(raw: str) -> str:
    return canonical_uuid(raw) or "-"


@routes.get(
    "/api/v1/invoices",
    summary="List the company's invoices (invoice.view), oldest first",
    tag="invoices",
    company=True,
    parameters=PAGE_PARAMETERS,
    responses={200: page_of(_INVOICE)},
)
def list_invoices(ctx: Ctx[Server], body: Body) -> None:
    auth = ctx.authorize(Permission.INVOICE_VIEW, company=True)
    page = ctx.state.data.invoices.list_page(str(auth.company_id), page_request(ctx))
    ctx.json(page_json(page, invoice_json))


@routes.post(
    "/api/v1/invoices",
    summary="Create an invoice (invoice.create)",
    tag="invoices",
    company=True,
    body=obj(_FIELDS, required=tuple(_FIELDS), additional=False),
    responses={201: _INVOICE},
)
def create_invoice(ctx: Ctx[Server], body: Body) -> None:
    auth = ctx.authorize(Permission.INVOICE_CREATE, company=True)
    values = {**_values(body), "created_by": auth.principal.user_id}
    row = ctx.state.data.invoices.create(str(auth.company_id), values, now=ctx.state.clock.now())
    ctx.json(invoice_json(row), status=201)


@routes.get(
    "/api/v1/invoices/{invoice_id}",
    summary="Read an invoice (invoice.view)",
    tag="invoices",
    company=True,
    responses={200: _INVOICE},
)
def get_invoice(ctx: Ctx[Server], body: Body, invoice_id: str) -> None:
    auth = ctx.authorize(Permission.INVOICE_VIEW, company=True)
    ctx.json(_found(ctx.state.data.invoices.get(str(auth.company_id), _id(invoice_id))))


@routes.patch(
    "/api/v1/invoices/{invoice_id}",
    summary="Change an invoice (invoice.update)",
    tag="invoices",
    company=True,
    body=obj(_FIELDS, additional=False),
    responses={200: _INVOICE},
)
def update_invoice(ctx: Ctx[Server], body: Body, invoice_id: str) -> None:
    auth = ctx.authorize(Permission.INVOICE_UPDATE, company=True)
    if not body:
        bad_request("Send at least one of: " + ", ".join(_FIELDS) + ".")
    row = ctx.state.data.invoices.change(
        str(auth.company_id), _id(invoice_id), _values(body), now=ctx.state.clock.now()
    )
    ctx.json(_found(row))


@routes.delete(
    "/api/v1/invoices/{invoice_id}",
    summary="Delete an invoice (invoice.delete): soft deletion, 404 afterwards",
    tag="invoices",
    company=True,
    responses={204: None},
)
def delete_invoice(ctx: Ctx[Server], body: Body, invoice_id: str) -> None:
    auth = ctx.authorize(Permission.INVOICE_DELETE, company=True)
    now = ctx.state.clock.now()
    if not ctx.state.data.invoices.remove(str(auth.company_id), _id(invoice_id), now=now):
        _not_found()
    ctx.no_content()
