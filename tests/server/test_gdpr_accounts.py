"""GDPR (ACC-4) in detail: re-authentication, ownership, revocation, pseudonymisation, and the
purge after the grace period (frozen clock)."""

from __future__ import annotations

from datetime import UTC, date, timedelta

import falcon
import pytest
import sqlalchemy as sa

from reference_server import db
from reference_server.errors import ApiError
from reference_server.gdpr import delete_account, export_user_data, purge_deleted_accounts
from reference_server.services import Services
from storno_security.api_keys import ApiKeyScope
from storno_security.audit import SecurityEventType, pseudonym
from storno_security.errors import InvalidApiKeyError
from storno_security.mfa import ACCOUNT_DELETE, VAULT_READ
from storno_security.stores.sql import audit_events
from tests.server.api import FalconApi
from tests.server.test_secure_data_helpers import (
    add_member,
    enable_mfa,
    insert_company,
    step_up_token,
)


def _user_row(services: Services, user_id: str) -> sa.RowMapping | None:
    with services.db.transaction() as conn:
        return conn.execute(sa.select(db.users).where(db.users.c.id == user_id)).mappings().first()


def _count(services: Services, table: sa.Table, **where: str) -> int:
    clauses = [table.c[name] == value for name, value in where.items()]
    with services.db.transaction() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(table).where(*clauses)).scalar_one()
        )


def _insert_invoice(services: Services, company_id: str, user_id: str) -> str:
    invoice_id = db.new_id()
    now = services.clock.now()
    with services.db.transaction() as conn:
        conn.execute(
            db.invoices.insert().values(
                id=invoice_id,
                company_id=company_id,
                number="F-1",
                customer="Client SRL",
                amount_minor=12_345,
                currency="EUR",
                issue_date=date(2026, 3, 1),
                created_by=user_id,
                created_at=now,
                updated_at=now,
            )
        )
    return invoice_id


def test_deletion_anonymises_and_revokes_everything(
    falcon_api: FalconApi, services: Services
) -> None:
    user = falcon_api.register()
    key = services.api_keys.create(
        user_id=user.user_id,
        organization_id=user.organization_id,
        name="ci",
        scope=ApiKeyScope.READ,
    )
    services.backup_codes.generate(user.user_id)
    assert services.backup_codes.remaining(user.user_id) == 10

    response = user.delete("/api/v1/me", {"current_password": user.password})
    assert response.status == 202, response.json
    expected = services.clock.now() + services.settings.deletion_grace
    assert response.json["purge_after"] == expected.isoformat().replace("+00:00", "Z")

    row = _user_row(services, user.user_id)
    assert row is not None
    assert row["email"] is None
    assert row["name"] == ""
    assert row["password_hash"] is None
    assert row["totp_secret_sealed"] is None
    assert row["google_subject"] is None
    assert row["deleted_at"] == services.clock.now().astimezone(UTC)
    with pytest.raises(InvalidApiKeyError):
        services.api_keys.verify(key.key)
    assert services.backup_codes.remaining(user.user_id) == 0
    assert falcon_api.post("/api/auth/refresh", {"refresh_token": user.refresh_token}).status == 401
    assert user.get("/api/v1/audit-events").status == 401

    # The audit trail holds the pseudonym, never the id (ACC-4).
    alias = pseudonym(user.user_id, key=services.keys.pseudonym)
    with services.db.transaction() as conn:
        actors = set(conn.execute(sa.select(audit_events.c.actor_id)).scalars())
        subjects = set(conn.execute(sa.select(audit_events.c.subject_id)).scalars())
    assert user.user_id not in actors | subjects
    assert alias in actors
    requested = services.audit.store.query(
        organization_id=None, types=[SecurityEventType.ACCOUNT_DELETION_REQUESTED]
    )
    assert [event.actor_id for event in requested] == [alias]


def test_api_keys_cannot_delete_the_account(falcon_api: FalconApi, services: Services) -> None:
    user = falcon_api.register()
    key = services.api_keys.create(
        user_id=user.user_id,
        organization_id=user.organization_id,
        name="ci",
        scope=ApiKeyScope.ADMIN,
    )
    response = falcon_api.delete("/api/v1/me", {"current_password": user.password}, api_key=key.key)
    assert response.status == 403
    assert falcon_api.get("/api/v1/me/export", api_key=key.key).status == 403
    assert _user_row(services, user.user_id)["deleted_at"] is None  # type: ignore[index]


def test_wrong_or_missing_password(falcon_api: FalconApi, services: Services) -> None:
    user = falcon_api.register()
    wrong = user.delete("/api/v1/me", {"current_password": "wrong password here"})
    assert (wrong.status, wrong.json["code"]) == (403, "invalid_credentials")
    missing = user.delete("/api/v1/me", {})
    assert (missing.status, missing.json["code"]) == (403, "reauthentication_required")
    assert user.delete("/api/v1/me").status == 403
    assert _user_row(services, user.user_id)["deleted_at"] is None  # type: ignore[index]


def test_with_mfa_a_step_up_token_for_account_delete_is_needed(
    falcon_api: FalconApi, services: Services
) -> None:
    user = falcon_api.register()
    secret = enable_mfa(services, user.user_id)
    refused = user.delete("/api/v1/me", {"current_password": user.password})
    assert refused.status == 403
    assert refused.json["code"] == "reauthentication_required"
    assert refused.json["accepted"] == ["step_up_token"]
    vault_token = step_up_token(services, falcon_api, user.user_id, secret, VAULT_READ)
    assert user.delete("/api/v1/me", {"step_up_token": vault_token}).status == 403
    falcon_api.clock.advance(30)  # type: ignore[union-attr]
    token = step_up_token(services, falcon_api, user.user_id, secret, ACCOUNT_DELETE)
    assert user.delete("/api/v1/me", {"step_up_token": token}).status == 202
    assert _user_row(services, user.user_id)["totp_secret_sealed"] is None  # type: ignore[index]


def test_an_owner_with_members_must_transfer_first(
    falcon_api: FalconApi, services: Services
) -> None:
    owner = falcon_api.register()
    member = falcon_api.register()
    add_member(services, member.user_id, owner.organization_id, "accountant")
    response = owner.delete("/api/v1/me", {"current_password": owner.password})
    assert response.status == 409
    assert response.json["code"] == "ownership_transfer_required"
    assert response.json["organization_ids"] == [owner.organization_id]
    assert _user_row(services, owner.user_id)["email"] == owner.email  # type: ignore[index]

    # The member may leave: deleting a non-owner account does not touch the organization.
    assert member.delete("/api/v1/me", {"current_password": member.password}).status == 202
    assert owner.delete("/api/v1/me", {"current_password": owner.password}).status == 202


def test_purge_after_the_grace_period(falcon_api: FalconApi, services: Services) -> None:
    owner = falcon_api.register()
    company = insert_company(services.db, owner.organization_id)
    _insert_invoice(services, company, owner.user_id)
    # A member of another organization, who created an invoice there.
    host = falcon_api.register()
    host_company = insert_company(services.db, host.organization_id)
    add_member(services, owner.user_id, host.organization_id, "accountant")
    kept_invoice = _insert_invoice(services, host_company, owner.user_id)

    assert owner.delete("/api/v1/me", {"current_password": owner.password}).status == 202
    assert purge_deleted_accounts(services) == 0
    falcon_api.clock.advance(services.settings.deletion_grace - timedelta(seconds=1))  # type: ignore[union-attr]
    assert purge_deleted_accounts(services) == 0
    assert _user_row(services, owner.user_id) is not None

    falcon_api.clock.advance(timedelta(seconds=1))  # type: ignore[union-attr]
    assert purge_deleted_accounts(services) == 1
    assert purge_deleted_accounts(services) == 0
    assert _user_row(services, owner.user_id) is None
    assert _count(services, db.memberships, user_id=owner.user_id) == 0
    assert _count(services, db.organizations, id=owner.organization_id) == 0
    assert _count(services, db.companies, id=company) == 0
    assert _count(services, db.invoices, company_id=company) == 0
    # The other organization keeps its data, without the link to the person.
    assert _count(services, db.organizations, id=host.organization_id) == 1
    with services.db.transaction() as conn:
        created_by = conn.execute(
            sa.select(db.invoices.c.created_by).where(db.invoices.c.id == kept_invoice)
        ).scalar_one()
    assert created_by is None
    deleted = services.audit.store.query(
        organization_id=None, types=[SecurityEventType.ACCOUNT_DELETED]
    )
    assert [event.subject_id for event in deleted] == [
        pseudonym(owner.user_id, key=services.keys.pseudonym)
    ]


def test_export_contents(falcon_api: FalconApi, services: Services) -> None:
    user = falcon_api.register()
    company = insert_company(services.db, user.organization_id)
    _insert_invoice(services, company, user.user_id)
    enable_mfa(services, user.user_id)
    services.backup_codes.generate(user.user_id)
    response = user.get("/api/v1/me/export")
    assert response.status == 200
    data = response.json
    assert data["profile"]["mfa_enabled"] is True
    assert data["backup_codes_left"] == 10
    assert data["invoices_created"][0]["amount_minor"] == 12_345
    assert data["organizations_owned"][0]["companies"][0]["id"] == company
    with services.db.transaction() as conn:
        sealed = conn.execute(
            sa.select(db.users.c.totp_secret_sealed).where(db.users.c.id == user.user_id)
        ).scalar_one()
    assert sealed not in response.body.decode()
    recorded = services.audit.store.query(
        organization_id=None, types=[SecurityEventType.DATA_EXPORTED], actor_id=user.user_id
    )
    assert len(recorded) == 1
    # Deleted accounts have nothing to export.
    delete_account(services, user.user_id)
    with pytest.raises(ApiError) as refused:
        export_user_data(services, user.user_id)
    assert refused.value.status == 404
    with pytest.raises(ApiError):
        delete_account(services, user.user_id)


def test_delete_me_shares_its_path_with_the_account_module(falcon_api: FalconApi) -> None:
    """``/api/v1/me``'s profile verbs live in another module; adding DELETE keeps them."""
    user = falcon_api.register()
    assert user.get("/api/v1/me").status == 200
    assert user.patch("/api/v1/me", {"name": "Renamed"}).status == 200
    assert user.delete("/api/v1/me", {}).status in (400, 403, 422)
    assert user.post("/api/v1/me", {}).status == 405


def test_two_resources_answering_one_verb_on_one_path_are_refused() -> None:
    from reference_server.app import RouteTable

    class First:
        def on_get(self) -> None: ...

    class Second:
        def on_get(self) -> None: ...

    table = RouteTable()
    table.add_route("/x", First())
    table.add_route("/x", Second())
    app = falcon.App()
    with pytest.raises(RuntimeError, match="on_get on /x"):
        table.install(app)
