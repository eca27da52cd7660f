"""Helpers for the secure-data and GDPR server tests: companies and invoices written straight
into the server's tables, members, MFA and step-up through the kit, a small UBL-like invoice,
base64, and another request's write at the moment of a security event. Holds no tests."""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import attrs
import pytest
import sqlalchemy as sa

from reference_server.data import ServerData, tables
from reference_server.wiring import Server
from storno_security.events import SecurityEventType
from storno_security.integrations.observability import SECURITY_EVENT_LOGGER
from storno_security.kit import Caller
from storno_security.rbac import Membership
from tests.server.api import Api, User

INVOICE = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2" '
    b'xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">'
    b"<cbc:ID>INV-2026-0001</cbc:ID><cbc:IssueDate>2026-03-01</cbc:IssueDate>"
    b"<cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>"
    b"<cbc:Note>Storno test</cbc:Note></Invoice>"
)
CREDENTIALS = "/api/v1/storage-credentials"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def insert_company(data: ServerData, organization_id: str, name: str = "ACME SRL") -> str:
    """A company of ``organization_id``, written into the server's table."""
    company_id = tables.new_id()
    with data.transaction() as conn:
        conn.execute(
            tables.companies.insert().values(
                id=company_id,
                organization_id=organization_id,
                name=name,
                country="RO",
                created_at=datetime.now(UTC),
            )
        )
    return company_id


def delete_company(server: Server, company_id: str) -> None:
    """Soft-delete a company (RBAC-4)."""
    with server.data.transaction() as conn:
        conn.execute(
            tables.companies.update()
            .where(tables.companies.c.id == company_id)
            .values(deleted_at=server.clock.now())
        )


def insert_invoice(server: Server, company_id: str, user_id: str, **fields: object) -> str:
    """An invoice created by ``user_id``, written into the server's table."""
    invoice_id = tables.new_id()
    now = server.clock.now()
    values: dict[str, object] = {
        "number": "F-1",
        "customer": "Client SRL",
        "amount_minor": 12_345,
        "currency": "EUR",
        "issue_date": date(2026, 3, 1),
        **fields,
    }
    with server.data.transaction() as conn:
        conn.execute(
            tables.invoices.insert().values(
                id=invoice_id,
                company_id=company_id,
                created_by=user_id,
                created_at=now,
                updated_at=now,
                **values,
            )
        )
    return invoice_id


@pytest.fixture
def company_of(api: Api, request: pytest.FixtureRequest) -> Iterator[Callable[[User], str]]:
    """Makes a company of a user's organization in the database of the server behind ``api``
    (the in-process one, or the running gunicorn's)."""
    if api.kind == "falcon":
        server: Server = request.getfixturevalue("server")
        yield lambda user: insert_company(server.data, user.organization_id)
        return
    data = ServerData(api.server.settings.effective_database_url)  # type: ignore[attr-defined]
    try:
        yield lambda user: insert_company(data, user.organization_id)
    finally:
        data.dispose()


def caller(server: Server, user: User) -> Caller:
    """The kit's caller for ``user``'s access token."""
    found = server.kit.authenticate(f"Bearer {user.access_token}")
    assert found is not None
    return found


def add_member(server: Server, user_id: str, organization_id: str, role: str) -> None:
    """Make ``user_id`` a member of ``organization_id`` straight in the directory."""
    directory = server.kit.directory
    org = directory.get_organization(organization_id)
    assert org is not None
    membership = Membership(user_id=user_id, organization_id=organization_id, role=role)
    written = directory.apply_memberships(
        organization_id,
        expected_version=org.version,
        memberships=[membership],
        now=server.clock.now(),
    )
    assert written


def set_membership(server: Server, user_id: str, organization_id: str, **changes: Any) -> None:
    """Change a membership straight in the directory (role, permissions, deleted_at)."""
    directory = server.kit.directory
    org = directory.get_organization(organization_id)
    assert org is not None
    current = next(
        m for m in directory.memberships_of(user_id) if m.organization_id == organization_id
    )
    written = directory.apply_memberships(
        organization_id,
        expected_version=org.version,
        memberships=[attrs.evolve(current, **changes)],
        now=server.clock.now(),
    )
    assert written


def enable_mfa(server: Server, api: Api, user: User) -> str:
    """Turn TOTP on for ``user`` through the kit; returns the secret. The frozen clock then
    moves to the next step, whose code is still unused (a step is accepted once, MFA-2)."""
    who = caller(server, user)
    enrolment = server.kit.begin_totp_enrolment(who, current_password=user.password)
    server.kit.confirm_totp_enrolment(who, api.totp_code(enrolment.secret))
    if api.clock is not None:
        api.clock.advance(30)  # type: ignore[attr-defined]
    return enrolment.secret


def step_up_token(server: Server, api: Api, user: User, secret: str, action: str) -> str:
    """A step-up token for ``action`` from a TOTP code of the current step (MFA-6). One per
    30-second step: a step is accepted once (MFA-2)."""
    grant = server.kit.step_up(
        caller(server, user), action, method="totp", code=api.totp_code(secret)
    )
    return grant.token


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


def relogin(api: Api, user: User) -> None:
    """A fresh access token for ``user`` (after the frozen clock moved past the old one)."""
    response = api.post("/api/auth", {"email": user.email, "password": user.password})
    assert response.status == 200, response.json
    user.access_token = response.json["access_token"]


def store_credential(
    user: User,
    company: str,
    secret: object = "s3cr3t-value",  # noqa: S107
    *,
    name: str = "n",
    **request: str,
) -> str:
    """Store a credential (re-authenticated with the user's password, ACC-6); its id."""
    response = user.post(
        CREDENTIALS,
        {"provider": "s3", "name": name, "secret": secret, "current_password": user.password},
        company=company,
        **request,
    )
    assert response.status == 201, response.json
    credential_id: str = response.json["id"]
    return credential_id


def reveal(user: User, company: str, credential_id: str, **proof: str) -> object:
    """``POST .../secret`` with ``proof`` (default: the user's password)."""
    body = proof or {"current_password": user.password}
    return user.post(f"{CREDENTIALS}/{credential_id}/secret", body, company=company)


# --- scanning every store (ACC-7) -----------------------------------------------------------


def needles_of(user_id: str, email: str | None = None) -> dict[str, tuple[str | bytes, ...]]:
    """The forms a user's id (canonical, bare hex, 16 raw bytes) and address take."""
    parsed = uuid.UUID(user_id)
    found: dict[str, tuple[str | bytes, ...]] = {"user_id": (user_id, parsed.hex, parsed.bytes)}
    if email:
        found["email"] = (email,)
    return found


def _holds(value: object, needle: str | bytes) -> bool:
    if value is None:
        return False
    if isinstance(needle, bytes):
        return isinstance(value, bytes | bytearray | memoryview) and needle in bytes(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return needle.lower().encode() in bytes(value).lower()
    return needle.lower() in str(value).lower()


def database_hits(engine: sa.Engine, *needles: str | bytes) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table of the database (reflected: the library's and the server's,
    whatever they are) that holds one of ``needles`` in any column, by ``table.column``."""
    metadata = sa.MetaData()
    metadata.reflect(bind=engine)
    found: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(sa.select(table)).mappings():
                for column, value in row.items():
                    if any(_holds(value, needle) for needle in needles):
                        found.setdefault(f"{table.name}.{column}", []).append(dict(row))
    return found


def redis_hits(client: Any, prefix: str, *needles: str | bytes) -> dict[str, list[object]]:
    """Every Redis key under ``prefix`` whose name or value (any type) holds one of
    ``needles``, with what it holds."""
    found: dict[str, list[object]] = {}
    for raw_key in client.scan_iter(match=prefix + "*", count=1000):
        kind = client.type(raw_key).decode()
        if kind == "string":
            values: list[object] = [client.get(raw_key)]
        elif kind == "hash":
            values = [item for pair in client.hgetall(raw_key).items() for item in pair]
        elif kind in ("set",):
            values = list(client.smembers(raw_key))
        elif kind == "zset":
            values = list(client.zrange(raw_key, 0, -1))
        elif kind == "list":
            values = list(client.lrange(raw_key, 0, -1))
        else:  # a stream or a module type: its raw dump
            values = [client.dump(raw_key)]
        if any(_holds(item, needle) for item in (raw_key, *values) for needle in needles):
            found[raw_key.decode()] = values
    return found


@contextmanager
def meanwhile(kind: SecurityEventType, act: Callable[[], object]) -> Iterator[list[object]]:
    """Run ``act`` (another request's write) once, when the kit emits its first ``kind``
    security event: after a flow's write, before the resource answers. Yields ``act``'s
    results (empty while it has not run)."""
    done: list[object] = []

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage() == kind.value and not done:
                done.append(act())

    events = logging.getLogger(SECURITY_EVENT_LOGGER)
    handler, level = Handler(logging.INFO), events.level
    events.setLevel(logging.INFO)
    events.addHandler(handler)
    try:
        yield done
    finally:
        events.removeHandler(handler)
        events.setLevel(level)
