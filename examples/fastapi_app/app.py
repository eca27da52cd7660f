"""A small, complete FastAPI application on storno-security.

The auth endpoints (register, confirm, login with MFA, refresh, logout, passkeys, API keys) come
from the integration's router; the application adds its own data (companies and invoices, kept
in memory here) and one protected route per role:

* ``GET /invoices`` needs ``invoice.view`` on the company named by ``X-Company`` (every role);
* ``POST /invoices`` needs ``invoice.create`` there (an Accountant or more);
* ``POST /invitations`` needs ``member.manage`` (an Admin or more);
* ``DELETE /organization`` needs ``org.delete`` (the Owner only).

Mail (the confirmation link, invitations) is written as JSON files to an outbox directory, as a
development set-up would. Run it from the repository's root::

    export STORNO_EXAMPLE_OUTBOX=/tmp/outbox
    uvicorn --factory --app-dir examples fastapi_app.app:create_app

``STORNO_EXAMPLE_DATABASE`` (a SQLAlchemy URL, e.g. ``sqlite:///app.db``) keeps the state in SQL
instead of memory; the per-request reads then run on the async driver of the same database.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
from fastapi import Depends, FastAPI, Response
from pydantic import BaseModel, Field

from storno_security.clock import Clock
from storno_security.integrations.fastapi import Caller, setup
from storno_security.kit import Kit, KitKeys, KitPolicy, Mail
from storno_security.rbac import Authorization, Company
from storno_security.stores.memory import memory_bundle

ISSUER = "https://api.example.eu"
AUDIENCE = "example-api"


class Outbox:
    """Delivers the kit's mail to files (one JSON file per message) and keeps it in memory."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self.sent: list[Mail] = []
        self._lock = threading.Lock()

    def send(self, mail: Mail) -> None:
        with self._lock:
            self.sent.append(mail)
            if self.directory is not None:
                self.directory.mkdir(parents=True, exist_ok=True)
                message = {"kind": mail.kind, "to": mail.to, "token": mail.token}
                if mail.invitation_id is not None:
                    message["invitation_id"] = mail.invitation_id
                path = self.directory / f"{len(self.sent):04d}-{mail.kind}.json"
                path.write_text(json.dumps(message), encoding="utf-8")

    def last(self, kind: str, to: str) -> Mail:
        """The newest message of ``kind`` sent to ``to``."""
        with self._lock:
            return next(m for m in reversed(self.sent) if m.kind == kind and m.to == to)


@attrs.define
class Data:
    """The application's own tables: companies and invoices."""

    companies: dict[str, Company] = attrs.Factory(dict)
    invoices: dict[str, list[dict[str, Any]]] = attrs.Factory(dict)


class CompanyBody(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class InvoiceBody(BaseModel):
    number: str = Field(min_length=1, max_length=40)
    amount: str = Field(pattern=r"^[0-9]{1,12}(\.[0-9]{2})?$")


class InvitationBody(BaseModel):
    email: str = Field(min_length=3, max_length=320)
    role: str = Field(pattern="^(admin|accountant|viewer)$")


def build_kit(
    *,
    outbox: Outbox,
    data: Data,
    database_url: str | None = None,
    policy: KitPolicy | None = None,
    clock: Clock | None = None,
) -> Kit:
    """The kit: memory stores, or SQL ones on ``database_url``."""
    if database_url is None:
        stores = memory_bundle()
    else:
        from storno_security.stores.sql import create_engine, create_schema, sql_bundle

        engine = create_engine(database_url)
        create_schema(engine)
        stores = sql_bundle(engine)
    return Kit(
        stores,
        policy=policy or KitPolicy.for_api(issuer=ISSUER, audience=AUDIENCE),
        keys=KitKeys.generate(),  # load them from your secret store in production
        mailer=outbox,
        companies=data.companies.get,
        clock=clock,
    )


def create_app(
    *,
    database_url: str | None = None,
    outbox_dir: Path | None = None,
    policy: KitPolicy | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """The application. Without arguments, configured from ``STORNO_EXAMPLE_DATABASE`` and
    ``STORNO_EXAMPLE_OUTBOX``."""
    if database_url is None:
        database_url = os.environ.get("STORNO_EXAMPLE_DATABASE")
    if outbox_dir is None and os.environ.get("STORNO_EXAMPLE_OUTBOX"):
        outbox_dir = Path(os.environ["STORNO_EXAMPLE_OUTBOX"])
    outbox, data = Outbox(outbox_dir), Data()
    kit = build_kit(outbox=outbox, data=data, database_url=database_url, policy=policy, clock=clock)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await security.aclose()
        kit.stores.close()

    app = FastAPI(title="storno-security example", lifespan=lifespan)
    app.state.outbox, app.state.data, app.state.kit = outbox, data, kit
    # One call: request context, error handlers, the auth router under /api/auth.
    security = setup(app, kit, database_url=database_url)
    can_create_companies = security.require_permission("company.create")
    can_view_invoices = security.require_permission("invoice.view", company=True)
    can_create_invoices = security.require_permission("invoice.create", company=True)
    can_manage_members = security.require_permission("member.manage")
    can_delete_organization = security.require_permission("org.delete")

    @app.post("/companies", status_code=201)
    async def create_company(
        body: CompanyBody,
        auth: Authorization = Depends(can_create_companies),
    ) -> dict[str, str]:
        company = Company(company_id=str(uuid.uuid4()), organization_id=auth.organization_id)
        data.companies[company.company_id] = company
        return {"id": company.company_id, "name": body.name}

    @app.get("/invoices")
    async def list_invoices(
        auth: Authorization = Depends(can_view_invoices),
    ) -> dict[str, Any]:
        return {"invoices": data.invoices.get(auth.company_id or "", [])}

    @app.post("/invoices", status_code=201)
    async def create_invoice(
        body: InvoiceBody,
        auth: Authorization = Depends(can_create_invoices),
    ) -> dict[str, Any]:
        invoice = {"id": secrets.token_hex(8), "number": body.number, "amount": body.amount}
        data.invoices.setdefault(auth.company_id or "", []).append(invoice)
        return invoice

    @app.post("/invitations", status_code=201)
    async def invite(
        body: InvitationBody,
        caller: Caller = Depends(security.user),
        auth: Authorization = Depends(can_manage_members),
    ) -> dict[str, str]:
        invitation = await security.offload.io(
            lambda: kit.invite(
                caller, body.email, role=body.role, organization=auth.organization_id
            )
        )
        return {"id": invitation.invitation_id}

    @app.post("/invitations/{invitation_id}/accept")
    async def accept(invitation_id: str, caller: Caller = Depends(security.user)) -> dict[str, str]:
        membership = await security.offload.io(kit.accept_invitation, caller, invitation_id)
        return {"organization_id": membership.organization_id, "role": membership.role.value}

    @app.delete("/organization", status_code=204)
    async def delete_organization(
        auth: Authorization = Depends(can_delete_organization),
    ) -> Response:
        return Response(status_code=204)  # the Owner may: the application would delete it here

    return app
