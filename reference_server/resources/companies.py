"""Companies of the caller's organization (RBAC-1, RBAC-3, RBAC-4): list, add, read, change,
soft-delete. The kit decides (``ctx.authorize``); the data module reads and writes only live
companies of the organization it was given, so another organization's company, a deleted one
and a malformed id are one 404.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reference_server.schemas import (
    PAGE_PARAMETERS,
    page_json,
    page_of,
    page_request,
)
from reference_server.wiring import Server
from storno_security.errors import CompanyNotFoundError
from storno_security.integrations.falcon.openapi import obj
from storno_security.integrations.falcon.routing import Body, Ctx, Routes, bad_request, iso
from storno_security.integrations.falcon.schemas import (
    END,
    NULLABLE_STRING,
    TIME,
    line,
)
from storno_security.rbac import Permission, canonical_uuid

__all__ = ["routes"]

routes = Routes()

_COMPANY = obj(
    {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "vat_id": NULLABLE_STRING,
        "country": {"type": "string"},
        "created_at": TIME,
    },
    required=("id", "name", "vat_id", "country", "created_at"),
)
_FIELDS = {
    "name": line(200),
    "vat_id": {
        "type": ["string", "null"],
        "pattern": f"^[A-Z0-9][A-Z0-9 .+*/-]{{1,31}}{END}",
        "description": "2 to 32 upper-case letters, digits, spaces or . + * / -; null: none.",
    },
    "country": {"type": "string", "pattern": f"^[A-Z]{{2}}{END}", "description": "ISO 3166-1"},
}


def company_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "vat_id": row["vat_id"],
        "country": row["country"],
        "created_at": iso(row["created_at"]),
    }


def _found(row: Mapping[str, Any] | None) -> dict[str, Any]:
    if row is None:
        raise CompanyNotFoundError(reason="unknown")
    return company_json(row)


def _id(raw: str) -> str:
    """The canonical id; a malformed one matches nothing (the same 404 as an unknown one)."""
    return canonical_uuid(raw) or "-"


@routes.get(
    "/api/v1/companies",
    summary="List the organization's companies (company.view)",
    tag="tenancy",
    organization=True,
    parameters=PAGE_PARAMETERS,
    responses={200: page_of(_COMPANY)},
)
def list_companies(ctx: Ctx[Server], body: Body) -> None:
    auth = ctx.authorize(Permission.COMPANY_VIEW)
    page = ctx.state.data.companies.list_page(auth.organization_id, page_request(ctx))
    ctx.json(page_json(page, company_json))


@routes.post(
    "/api/v1/companies",
    summary="Add a company to the organization (company.create)",
    tag="tenancy",
    organization=True,
    body=obj(_FIELDS, required=("name", "country"), additional=False),
    responses={201: _COMPANY},
)
def create_company(ctx: Ctx[Server], body: Body) -> None:
    auth = ctx.authorize(Permission.COMPANY_CREATE)
    org = auth.organization_id
    ctx.state.require_plan(org, companies=ctx.state.data.companies.count_live(org))
    values = {"vat_id": None, **body}
    row = ctx.state.data.companies.create(auth.organization_id, values, now=ctx.state.clock.now())
    ctx.json(company_json(row), status=201)


@routes.get(
    "/api/v1/companies/{company_id}",
    summary="Read a company (company.view)",
    tag="tenancy",
    organization=True,
    responses={200: _COMPANY},
)
def get_company(ctx: Ctx[Server], body: Body, company_id: str) -> None:
    auth = ctx.authorize(Permission.COMPANY_VIEW)
    ctx.json(_found(ctx.state.data.companies.get(auth.organization_id, _id(company_id))))


@routes.patch(
    "/api/v1/companies/{company_id}",
    summary="Change a company (company.manage); `vat_id: null` clears it",
    tag="tenancy",
    organization=True,
    body=obj(_FIELDS, additional=False),
    responses={200: _COMPANY},
)
def update_company(ctx: Ctx[Server], body: Body, company_id: str) -> None:
    auth = ctx.authorize(Permission.COMPANY_MANAGE)
    if not body:
        bad_request("Send at least one of: name, vat_id, country.")
    now = ctx.state.clock.now()
    row = ctx.state.data.companies.change(auth.organization_id, _id(company_id), body, now=now)
    ctx.json(_found(row))


@routes.delete(
    "/api/v1/companies/{company_id}",
    summary="Delete a company (company.delete): soft deletion, 404 everywhere afterwards",
    tag="tenancy",
    organization=True,
    responses={204: None},
)
def delete_company(ctx: Ctx[Server], body: Body, company_id: str) -> None:
    auth = ctx.authorize(Permission.COMPANY_DELETE)
    now = ctx.state.clock.now()
    if not ctx.state.data.companies.remove(auth.organization_id, _id(company_id), now=now):
        raise CompanyNotFoundError(reason="unknown")
    ctx.no_content()
