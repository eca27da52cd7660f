"""A small, complete Flask application on storno-security.

The auth endpoints (register, confirm, login with MFA, refresh, logout, passkeys, API keys) come
from the extension's blueprint; the application adds its own data (companies and invoices, kept
in memory here) and one protected route per role:

* ``GET /invoices`` needs ``invoice.view`` on the company named by ``X-Company`` (every role);
* ``POST /invoices`` needs ``invoice.create`` there (an Accountant or more);
* ``POST /invitations`` needs ``member.manage`` (an Admin or more);
* ``DELETE /organization`` needs ``org.delete`` (the Owner only).

Mail is written as JSON files to an outbox directory, as a development set-up would. Run it
from the repository's root, with one worker (the memory stores live in the process)::

    export STORNO_EXAMPLE_OUTBOX=/tmp/outbox
    gunicorn --workers 1 --chdir examples "flask_app.app:create_app()"

``STORNO_EXAMPLE_DATABASE`` (a SQLAlchemy URL, e.g. ``sqlite:///app.db``) keeps the state in SQL
instead of memory.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import uuid
from pathlib import Path
from typing import Any

import attrs
from flask import Flask, g, request
from flask.typing import ResponseReturnValue

from storno_security.clock import Clock
from storno_security.integrations.flask import (
    ApiError,
    StornoFlask,
    login_required,
    require_permission,
)
from storno_security.kit import Kit, KitKeys, KitPolicy, Mail
from storno_security.rbac import Company
from storno_security.stores.memory import memory_bundle

ISSUER = "https://api.example.eu"
AUDIENCE = "example-api"

_AMOUNT = re.compile(r"[0-9]{1,12}(\.[0-9]{2})?")


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


def _field(name: str, *, max_length: int = 200, pattern: re.Pattern[str] | None = None) -> str:
    body = request.get_json(silent=True)
    value = body.get(name) if isinstance(body, dict) else None
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= max_length
        or (pattern is not None and pattern.fullmatch(value) is None)
    ):
        raise ApiError(400, "invalid_request", f"'{name}' is missing or not valid.")
    return value


def create_app(
    *,
    database_url: str | None = None,
    outbox_dir: Path | None = None,
    policy: KitPolicy | None = None,
    clock: Clock | None = None,
) -> Flask:
    """The application. Without arguments, configured from ``STORNO_EXAMPLE_DATABASE`` and
    ``STORNO_EXAMPLE_OUTBOX``."""
    if database_url is None:
        database_url = os.environ.get("STORNO_EXAMPLE_DATABASE")
    if outbox_dir is None and os.environ.get("STORNO_EXAMPLE_OUTBOX"):
        outbox_dir = Path(os.environ["STORNO_EXAMPLE_OUTBOX"])
    outbox, data = Outbox(outbox_dir), Data()
    kit = build_kit(outbox=outbox, data=data, database_url=database_url, policy=policy, clock=clock)

    app = Flask(__name__)
    app.extensions["example"] = {"outbox": outbox, "data": data, "kit": kit}
    # The request context, the error handlers, the auth blueprint under /api/auth.
    StornoFlask(kit, app)

    @app.post("/companies")
    @require_permission("company.create")
    def create_company() -> ResponseReturnValue:
        company = Company(
            company_id=str(uuid.uuid4()), organization_id=g.authorization.organization_id
        )
        data.companies[company.company_id] = company
        return {"id": company.company_id, "name": _field("name")}, 201

    @app.get("/invoices")
    @require_permission("invoice.view", company=True)
    def list_invoices() -> ResponseReturnValue:
        return {"invoices": data.invoices.get(g.authorization.company_id, [])}

    @app.post("/invoices")
    @require_permission("invoice.create", company=True)
    def create_invoice() -> ResponseReturnValue:
        invoice: dict[str, Any] = {
            "id": secrets.token_hex(8),
            "number": _field("number", max_length=40),
            "amount": _field("amount", pattern=_AMOUNT),
        }
        data.invoices.setdefault(g.authorization.company_id, []).append(invoice)
        return invoice, 201

    @app.post("/invitations")
    @login_required(allow_api_keys=False)
    @require_permission("member.manage")
    def invite() -> ResponseReturnValue:
        role = _field("role", pattern=re.compile("admin|accountant|viewer"))
        invitation = kit.invite(
            g.caller,
            _field("email", max_length=320),
            role=role,
            organization=g.authorization.organization_id,
        )
        return {"id": invitation.invitation_id}, 201

    @app.post("/invitations/<invitation_id>/accept")
    @login_required(allow_api_keys=False)
    def accept(invitation_id: str) -> ResponseReturnValue:
        membership = kit.accept_invitation(g.caller, invitation_id)
        return {"organization_id": membership.organization_id, "role": membership.role.value}

    @app.delete("/organization")
    @require_permission("org.delete")
    def delete_organization() -> ResponseReturnValue:
        return "", 204  # the Owner may: the application would delete it here

    return app
